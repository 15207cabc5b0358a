"""Reading a mailbox's IMAP folders without changing anything on the server.

Folders are opened read-only (``EXAMINE``), and messages are fetched with ``BODY.PEEK[]``, which
unlike ``BODY[]`` and ``RFC822`` does not set ``\\Seen``: nothing is ever marked read, moved or
deleted. At most ``max_bytes`` of each message are read (a partial fetch), so one huge message costs
neither the bandwidth nor the memory of its attachments.

Every step of the conversation has an overall deadline (``deadline_seconds``), not only the
per-read ``timeout``: connecting, the greeting, STARTTLS and the login together, then each command.
A server that drips its answers a byte at a time is cut off when the deadline runs out, and so is
every conversation of the session's ``scope`` when it is cancelled (see ``cam.deadlines``).

A mailbox with the OAuth2 login logs in with SASL XOAUTH2 (``imap_login_mailbox``, imapclient's
``oauth2_login``) with the access token ``cam.mail_oauth`` gives it, refreshed once if refused.

A session opened with ``reuse=True`` (the poller's) is not logged out when done but kept, logged in,
for the next poll of the same mailbox in this process: that poll sends a NOOP (within one read's
deadline) instead of connecting and logging in again, and connects afresh when the NOOP fails, when
the session was kept longer than ``KEEP_IDLE_SECONDS``, or when the mailbox's server, user or password
changed meanwhile. A session that failed in any way but a refused folder is never kept. OAuth2
mailboxes log in every time, so that a revoked grant or an expired token is seen at once.
``imap_sessions_close`` logs out every kept session.

Every failure comes out as ``ImapError`` with a message meant for the operator. ``ImapFolderError``
is the kind that leaves the connection usable (the server refused one folder), so the caller can go
on with the next folder; after any other ``ImapError`` the connection is gone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from cam import deadlines
from cam.deadlines import CancelScope, Deadline, DeadlineExceeded
from cam.mail_oauth import OAuthProblem, login_user, oauth_login
from cam.models import Mailbox
from cam.models.mail import Security

logger = logging.getLogger(__name__)

_BYTES_REPR = re.compile(r"b(['\"])(.*)\1", re.DOTALL)
DEFAULT_PORTS: dict[str, int] = {Security.NONE: 143, Security.STARTTLS: 143, Security.SSL: 993}
# A fetch may take longer than other commands: its deadline grows by the time the most it can bring
# (every message at max_bytes) takes at this rate. A server slower than that is treated as stuck.
SLOWEST_FETCH_BYTES_PER_SECOND = 1_000_000
# How long a logged-in session is kept unused for the next poll. RFC 3501 lets a server log out a
# session idle for 30 minutes; some cut sooner. Far below both, and well above a worker's interval.
KEEP_IDLE_SECONDS = 300.0


@dataclass
class _Kept:
    opened_with: tuple[str, ...]  # the mailbox's server, user and password (hashed) when it logged in
    client: IMAPClient
    since: float  # time.monotonic() when it was put aside


# Logged-in sessions between polls, by mailbox id; a poll takes its mailbox's out while it uses it.
_kept: dict[int, _Kept] = {}
_kept_lock = threading.Lock()


def _shut(client: IMAPClient) -> None:
    """End a session without a word to the server (which may not answer)."""
    with suppress(Exception):
        client.shutdown()


def imap_sessions_expire() -> int:
    """End the kept sessions unused for more than ``KEEP_IDLE_SECONDS`` (a mailbox deactivated, deleted or no
    longer polled by this worker would otherwise keep its connection); returns how many."""
    now = time.monotonic()
    with _kept_lock:
        stale = [pk for pk, session in _kept.items() if now - session.since > KEEP_IDLE_SECONDS]
        ended = [_kept.pop(pk) for pk in stale]
    for session in ended:
        _shut(session.client)
    return len(ended)


def imap_sessions_close(*, logout: bool = True) -> int:
    """End every session kept between polls, logging each out first (a goodbye of one read's wait each at
    most) unless ``logout`` is false — a worker told to stop leaves at once; returns how many."""
    with _kept_lock:
        kept = list(_kept.values())
        _kept.clear()
    for session in kept:
        if logout:
            with suppress(Exception):
                sock = session.client.socket()
                sock.settimeout(min(sock.gettimeout() or 5.0, 5.0))
                session.client.logout()
        _shut(session.client)
    return len(kept)


class ImapError(Exception):
    """The IMAP server could not be reached, refused us, or broke off; the message says which."""


class ImapFolderError(ImapError):
    """The server refused one folder (it does not exist, no permission); the connection still works."""


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int  # the UID the server will give the next message that arrives


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


# imapclient ships no types, so its classes are Any to mypy.
class _WatchedPlainIMAP4(imap4.IMAP4WithTimeout):  # type: ignore[misc]
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock: socket.socket = super()._create_socket(timeout)
        deadlines.watch(sock)
        return sock


class _WatchedTlsIMAP4(tls.IMAP4_TLS):  # type: ignore[misc]
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        # IMAP4_TLS connects and shakes hands in one call; done in two here, so that the socket is
        # watched before the handshake, which a slow server can drip as well.
        sock = socket.create_connection((self.host, self.port), timeout if timeout is not None else self._timeout)
        deadlines.watch(sock)
        return cast(socket.socket, tls.wrap_socket(sock, self.ssl_context, self.host))


class _WatchedIMAPClient(IMAPClient):  # type: ignore[misc]
    """IMAPClient whose socket comes under the caller's deadline (``cam.deadlines.watch``) as soon as
    it is connected.

    The server's greeting (and for SSL the TLS handshake) is read inside IMAPClient's constructor,
    so the socket has to be caught where imaplib creates it, before anything is read. The hooks are
    the least likely to move: imaplib's ``_create_socket`` is imaplib's own seam for that (IMAP4_SSL
    and imapclient's two classes override it), and ``_create_IMAP4`` is the one place IMAPClient
    picks its class, called with nothing but the constructor's arguments. Both are private; the
    drip-feeding tests in tests/inbox/test_poll_deadlines.py fail if an upgrade goes around them.
    """

    def _create_IMAP4(self) -> imap4.IMAP4WithTimeout | tls.IMAP4_TLS:
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _WatchedTlsIMAP4(self.host, self.port, self.ssl_context, connect_timeout)
        return _WatchedPlainIMAP4(self.host, self.port, connect_timeout)


def imap_login_xoauth2(client: IMAPClient, user: str, token: str) -> None:
    """Log in on an open IMAP connection with SASL XOAUTH2 (Microsoft 365, Google). Raises imapclient's
    ``LoginError`` when the server refuses the token (``AUTHENTICATIONFAILED``)."""
    client.oauth2_login(user, token)


def imap_login_mailbox(client: IMAPClient, mailbox: Mailbox) -> None:
    """Log ``mailbox`` in over XOAUTH2 with its access token, refreshed first when it is about to expire, and
    once more when the server refuses a cached one. Raises ``OAuthProblem`` (``ReconnectNeeded``) when no
    token can be had, ``LoginError`` when the server refuses a fresh one."""
    user = login_user(mailbox, protocol="imap")
    oauth_login(mailbox, lambda token: imap_login_xoauth2(client, user, token), refused=(LoginError,))


class ImapInbox:
    """One read-only IMAP session on a mailbox: ``with ImapInbox(mailbox, password=…) as inbox: …``.

    ``timeout`` limits each read from the server, ``deadline_seconds`` each step as a whole (the
    login, a command); the session's deadlines are cut off when ``scope`` is cancelled.
    """

    def __init__(self, mailbox: Mailbox, *, password: str, timeout: float, max_bytes: int,
                 deadline_seconds: float, scope: CancelScope | None = None, reuse: bool = False) -> None:
        self.mailbox = mailbox
        self.password = password
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self.scope = scope
        # Keep the session for the next poll of this mailbox (see the module's docstring); never an OAuth2 one.
        self.reuse = reuse and mailbox.auth != Mailbox.Auth.OAUTH2
        self.reused = False  # a kept session taken by open(), until its first command proves it
        self.client: IMAPClient | None = None
        self.folder = ""
        self._broken = False  # something failed mid-conversation: not to be kept

    @property
    def port(self) -> int:
        return self.mailbox.imap_port or DEFAULT_PORTS.get(self.mailbox.imap_security, 993)

    @property
    def server(self) -> str:
        return f"{self.mailbox.imap_host}:{self.port}"

    @property
    def username(self) -> str:
        if self.mailbox.auth == Mailbox.Auth.OAUTH2:
            return login_user(self.mailbox, protocol="imap")
        return self.mailbox.imap_username or self.mailbox.from_email

    # --- the session ----------------------------------------------------------------------------

    def __enter__(self) -> ImapInbox:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect (SSL, STARTTLS or plain, as the mailbox says) and log in, all within one deadline; or, with
        ``reuse``, take the session kept from this mailbox's last poll when it still answers."""
        self._broken = False
        if self.reuse and self._take_kept():
            return
        self._connect()

    def _connect(self) -> None:
        security = self.mailbox.imap_security
        try:
            with self._deadline() as deadline:
                with self._errors("connecting", deadline):
                    self.client = _WatchedIMAPClient(self.mailbox.imap_host, port=self.port,
                                                     ssl=security == Security.SSL,
                                                     ssl_context=ssl.create_default_context(), timeout=self.timeout)
                    # Aware datetimes for INTERNALDATE instead of naive local ones.
                    self.client.normalise_times = False
                    if security == Security.STARTTLS:
                        self.client.starttls(ssl.create_default_context())
                with self._errors("logging in", deadline):
                    if self.mailbox.auth == Mailbox.Auth.OAUTH2:
                        imap_login_mailbox(self.client, self.mailbox)
                    else:
                        self.client.login(self.username, self.password)
        except ImapError:
            self.close()
            raise

    def close(self) -> None:
        if self.client is None:
            return
        if self.reuse and not self._broken and not (self.scope is not None and self.scope.cancelled):
            self._keep()
            return
        try:
            # Saying goodbye is worth one read's wait at most; a cut-off session skips it.
            with self._deadline(min(self.timeout, self.deadline_seconds)) as deadline:
                deadline.check()
                self.client.logout()
        except Exception:  # a broken connection: nothing left to say goodbye to
            with suppress(Exception):
                self.client.shutdown()
        self.client = None

    # --- sessions kept between polls ---------------------------------------------------------------

    @property
    def _opened_with(self) -> tuple[str, ...]:
        secret = hashlib.sha256(self.password.encode()).hexdigest()
        return (self.mailbox.imap_host, str(self.port), self.mailbox.imap_security, self.username, secret)

    def _keep(self) -> None:
        assert self.client is not None
        with _kept_lock:
            previous = _kept.pop(self.mailbox.pk, None)
            _kept[self.mailbox.pk] = _Kept(self._opened_with, self.client, time.monotonic())
        if previous is not None and previous.client is not self.client:
            _shut(previous.client)
        self.client = None

    def _take_kept(self) -> bool:
        """Take this mailbox's kept session if it was opened the same way, is fresh and answers a NOOP."""
        with _kept_lock:
            kept = _kept.pop(self.mailbox.pk, None)
        if kept is None:
            return False
        if kept.opened_with != self._opened_with or time.monotonic() - kept.since > KEEP_IDLE_SECONDS:
            _shut(kept.client)
            return False
        self.client = kept.client
        try:
            with (self._deadline(min(self.timeout, self.deadline_seconds)) as deadline,
                  self._errors("checking the session kept from the last poll", deadline)):
                self.client.noop()
        except ImapError as exc:
            logger.info("The kept IMAP session of mailbox %s is gone (%s); logging in again.", self.mailbox.name, exc)
            _shut(kept.client)
            self.client = None
            self._broken = False
            return False
        self.reused = True
        return True

    # --- reading --------------------------------------------------------------------------------

    def select(self, folder: str) -> FolderStatus:
        """Open ``folder`` read-only; returns its UIDVALIDITY and UIDNEXT.

        A kept session that fails here, at its first real command, is replaced by a fresh login once: the
        server may have changed under it (a folder rebuilt or restored) in ways its NOOP did not tell."""
        kept = self.reused
        try:
            return self._select(folder)
        except ImapError:
            if not kept:
                raise
        logger.info("The kept IMAP session of mailbox %s failed to open %r; logging in again.", self.mailbox.name,
                    folder)
        assert self.client is not None
        _shut(self.client)
        self.client, self._broken = None, False
        self._connect()
        return self._select(folder)

    def _select(self, folder: str) -> FolderStatus:
        self.reused = False  # from the first command on, the session is this poll's own
        with self._deadline() as deadline, self._errors(f"opening folder {folder!r}", deadline, folder=folder):
            assert self.client is not None  # connected by open()
            status = self.client.select_folder(folder, readonly=True)
        self.folder = folder
        try:
            uidvalidity = int(status[b"UIDVALIDITY"])
        except (KeyError, TypeError, ValueError):
            raise ImapFolderError(f"The IMAP server {self.server} gave no UIDVALIDITY for folder {folder!r}, "
                                  f"so its messages cannot be told apart safely.") from None
        try:
            uidnext = int(status[b"UIDNEXT"])
        except (KeyError, TypeError, ValueError):
            # RFC 3501 requires UIDNEXT in the answer to SELECT, but a server that leaves it out still
            # numbers its next message above the highest UID it holds.
            uidnext = self._highest_uid() + 1
        return FolderStatus(uidvalidity=uidvalidity, uidnext=uidnext)

    def _highest_uid(self) -> int:
        with self._deadline() as deadline, self._errors(f"searching folder {self.folder!r}", deadline):
            assert self.client is not None
            found = self.client.search(["UID", "*"])  # "*" is the message with the highest UID
        return max(found, default=0)

    def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs above ``last_uid`` in the selected folder, ascending."""
        with self._deadline() as deadline, self._errors(f"searching folder {self.folder!r}", deadline):
            assert self.client is not None
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n: drop it when nothing is new.
        return sorted(uid for uid in found if uid > last_uid)

    def uids_received_since(self, day: date, *, below_uid: int) -> list[int]:
        """The UIDs below ``below_uid`` of the messages the server received on ``day`` or later, ascending.

        The server compares its own received date (INTERNALDATE), not the messages' Date headers, which
        senders set as they please.
        """
        if below_uid <= 1:
            return []
        with self._deadline() as deadline, self._errors(f"searching folder {self.folder!r}", deadline):
            assert self.client is not None
            found = self.client.search(["UID", f"1:{below_uid - 1}", "SINCE", day])
        return sorted(uid for uid in found if uid < below_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """The size in bytes (``RFC822.SIZE``) of each message of ``uids`` still there, by UID: one command,
        a line per message."""
        if not uids:
            return {}
        # A line of about 40 bytes per message, as the fetch's allowance counts bytes.
        seconds = self.deadline_seconds + len(uids) * 64 / SLOWEST_FETCH_BYTES_PER_SECOND
        with (self._deadline(seconds) as deadline,
              self._errors(f"reading message sizes in folder {self.folder!r}", deadline)):
            assert self.client is not None
            response = self.client.fetch(uids, ["RFC822.SIZE"])
        return {int(uid): int(size) for uid, data in response.items()
                if isinstance(size := data.get(b"RFC822.SIZE"), int)}

    def fetch(self, uids: list[int], *, most_bytes: int | None = None) -> list[FetchedMessage]:
        """The messages with ``uids`` (those still there), at most ``max_bytes`` of each, in UID order.

        ``most_bytes``: the most the messages can bring, when the caller knows their sizes (else every one
        is counted at ``max_bytes``); the fetch's deadline allows for that much."""
        if not uids:
            return []
        items = [f"BODY.PEEK[]<0.{self.max_bytes}>", "INTERNALDATE", "RFC822.SIZE"]
        most = len(uids) * self.max_bytes if most_bytes is None else most_bytes
        seconds = self.deadline_seconds + most / SLOWEST_FETCH_BYTES_PER_SECOND
        with (self._deadline(seconds) as deadline,
              self._errors(f"fetching from folder {self.folder!r}", deadline)):
            assert self.client is not None
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

    # --- deadlines and errors ---------------------------------------------------------------------

    @contextmanager
    def _deadline(self, seconds: float | None = None) -> Iterator[Deadline]:
        """A deadline for one step, watching the session's socket (a new one is watched as it connects)."""
        with Deadline(seconds or self.deadline_seconds, f"talking to the IMAP server {self.server}",
                      scope=self.scope) as deadline:
            if self.client is not None:
                deadline.watch(self.client.socket())
            yield deadline

    @contextmanager
    def _errors(self, doing: str, deadline: Deadline, *, folder: str | None = None) -> Iterator[None]:
        """Turn whatever imapclient, the socket or TLS raise into an ``ImapError`` that says what failed.

        When ``deadline`` fired, that is what failed, whatever broke as a result. Any failure but a refused
        folder leaves the session in doubt: it is not kept for the next poll.
        """
        try:
            with self._explained(doing, deadline, folder=folder):
                yield
        except ImapFolderError:
            raise
        except BaseException:
            self._broken = True
            raise

    @contextmanager
    def _explained(self, doing: str, deadline: Deadline, *, folder: str | None) -> Iterator[None]:
        try:
            deadline.check()  # a cancelled poll starts nothing new
            with deadline.explaining():
                yield
            deadline.check()  # done just as time ran out: the connection is cut all the same
        except DeadlineExceeded as exc:
            if exc.cancelled:
                raise ImapError(f"Gave up on the IMAP server {self.server} while {doing}: {exc.cancelled}.") from exc
            raise ImapError(f"The IMAP server {self.server} did not finish {doing} within {exc.seconds:g} s.") from exc
        except OAuthProblem as exc:  # no access token to log in with: the mailbox's grant, or its provider
            raise ImapError(str(exc)) from None
        except LoginError as exc:
            if self.mailbox.auth == Mailbox.Auth.OAUTH2:
                raise ImapError(f"The IMAP server {self.server} refused the OAuth2 login (XOAUTH2) as "
                                f"{self.username!r} with a fresh access token: {_text(exc)} (did the app get the "
                                f"IMAP scope?).") from exc
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


# For other IMAP conversations (cam.mailboxes.connection_test): the same deadline-watched socket.
WatchedIMAPClient = _WatchedIMAPClient
