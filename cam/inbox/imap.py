"""Reading a mailbox's IMAP folders without changing anything on the server.

Folders are opened read-only (``EXAMINE``), and messages are fetched with ``BODY.PEEK[]``, which
unlike ``BODY[]`` and ``RFC822`` does not set ``\\Seen``: nothing is ever marked read, moved or
deleted. At most ``max_bytes`` of each message are read (a partial fetch), so one huge message costs
neither the bandwidth nor the memory of its attachments.

Every failure comes out as ``ImapError`` with a message meant for the operator. ``ImapFolderError``
is the kind that leaves the connection usable (the server refused one folder), so the caller can go
on with the next folder; after any other ``ImapError`` the connection is gone.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from cam.models import Mailbox
from cam.models.mail import Security

logger = logging.getLogger(__name__)

_BYTES_REPR = re.compile(r"b(['\"])(.*)\1", re.DOTALL)
DEFAULT_PORTS = {Security.NONE: 143, Security.STARTTLS: 143, Security.SSL: 993}


class ImapError(Exception):
    """The IMAP server could not be reached, refused us, or broke off; the message says which."""


class ImapFolderError(ImapError):
    """The server refused one folder (it does not exist, no permission); the connection still works."""


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes  # the message's first ``max_bytes`` bytes
    size: int  # the whole message's size on the server
    internal_date: datetime | None  # when the server received it, timezone-aware

    @property
    def truncated(self) -> bool:
        return self.size > len(self.raw)


def _text(exc: BaseException) -> str:
    """What an exception says, without the b'…' imaplib leaves around the server's words."""
    said = exc.args[0] if len(exc.args) == 1 else exc
    if isinstance(said, bytes):
        said = said.decode("utf-8", "replace")
    said = str(said)
    wrapped = _BYTES_REPR.fullmatch(said)  # imapclient's LoginError carries str(b"...")
    if wrapped:
        said = wrapped.group(2)
    return said.rstrip(".") or type(exc).__name__


class ImapInbox:
    """One read-only IMAP session on a mailbox: ``with ImapInbox(mailbox, password=…) as inbox: …``."""

    def __init__(self, mailbox: Mailbox, *, password: str, timeout: float, max_bytes: int) -> None:
        self.mailbox = mailbox
        self.password = password
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.client: IMAPClient | None = None
        self.folder = ""

    @property
    def port(self) -> int:
        return self.mailbox.imap_port or DEFAULT_PORTS.get(self.mailbox.imap_security, 993)

    @property
    def server(self) -> str:
        return f"{self.mailbox.imap_host}:{self.port}"

    @property
    def username(self) -> str:
        return self.mailbox.imap_username or self.mailbox.from_email

    # --- the session ----------------------------------------------------------------------------

    def __enter__(self) -> ImapInbox:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect (SSL, STARTTLS or plain, as the mailbox says) and log in."""
        security = self.mailbox.imap_security
        try:
            with self._errors("connecting"):
                self.client = IMAPClient(self.mailbox.imap_host, port=self.port, ssl=security == Security.SSL,
                                         ssl_context=ssl.create_default_context(), timeout=self.timeout)
                # Aware datetimes for INTERNALDATE instead of naive local ones.
                self.client.normalise_times = False
                if security == Security.STARTTLS:
                    self.client.starttls(ssl.create_default_context())
            with self._errors("logging in"):
                self.client.login(self.username, self.password)
        except ImapError:
            self.close()
            raise

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.client.logout()
        except Exception:  # a broken connection: nothing left to say goodbye to
            with suppress(Exception):
                self.client.shutdown()
        self.client = None

    # --- reading --------------------------------------------------------------------------------

    def select(self, folder: str) -> int:
        """Open ``folder`` read-only; returns its UIDVALIDITY."""
        with self._errors(f"opening folder {folder!r}", folder=folder):
            status = self.client.select_folder(folder, readonly=True)
        self.folder = folder
        try:
            return int(status[b"UIDVALIDITY"])
        except (KeyError, TypeError, ValueError):
            raise ImapFolderError(f"The IMAP server {self.server} gave no UIDVALIDITY for folder {folder!r}, "
                                  f"so its messages cannot be told apart safely.") from None

    def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs above ``last_uid`` in the selected folder, ascending."""
        with self._errors(f"searching folder {self.folder!r}"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n: drop it when nothing is new.
        return sorted(uid for uid in found if uid > last_uid)

    def fetch(self, uids: list[int]) -> list[FetchedMessage]:
        """The messages with ``uids`` (those still there), at most ``max_bytes`` of each, in UID order."""
        if not uids:
            return []
        items = [f"BODY.PEEK[]<0.{self.max_bytes}>", "INTERNALDATE", "RFC822.SIZE"]
        with self._errors(f"fetching from folder {self.folder!r}"):
            response = self.client.fetch(uids, items)
        messages = []
        for uid in sorted(response):
            data = response[uid]
            # The key is b"BODY[]<0>" for a partial fetch; servers differ in how they echo it.
            raw = next((value for key, value in data.items() if key.startswith(b"BODY[")), None) or b""
            size = data.get(b"RFC822.SIZE")
            internal_date = data.get(b"INTERNALDATE")
            messages.append(FetchedMessage(
                uid=int(uid), raw=bytes(raw),
                size=int(size) if isinstance(size, int) else len(raw),
                internal_date=internal_date if isinstance(internal_date, datetime) else None))
        return messages

    # --- errors ---------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str, *, folder: str | None = None) -> Iterator[None]:
        """Turn whatever imapclient, the socket or TLS raise into an ``ImapError`` that says what failed."""
        try:
            yield
        except LoginError as exc:
            variable = self.mailbox.imap_password_env or "its variable"
            raise ImapError(f"The IMAP server {self.server} refused the login as {self.username!r}: {_text(exc)} "
                            f"(check the password in {variable}).") from exc
        except IMAPClientAbortError as exc:
            raise ImapError(f"The IMAP server {self.server} broke off the connection while {doing}: "
                            f"{_text(exc)}.") from exc
        except TimeoutError as exc:
            raise ImapError(f"The IMAP server {self.server} did not answer within {self.timeout:g} s "
                            f"while {doing}.") from exc
        except OSError as exc:  # refused, unknown host, TLS handshake, reset
            raise ImapError(f"Could not reach the IMAP server {self.server} while {doing}: "
                            f"{type(exc).__name__}: {_text(exc)}.") from exc
        except IMAPClientError as exc:  # the server answered NO or BAD
            error = ImapFolderError if folder is not None else ImapError
            raise error(f"The IMAP server {self.server} refused {doing}: {_text(exc)}.") from exc
