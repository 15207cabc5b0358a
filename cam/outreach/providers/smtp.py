"""The SMTP provider: Django's SMTP backend, built from the mailbox, one connection per batch.

SMTP has no idempotency key, so the outcome of a send is decided by how far the conversation got:

- nothing sent yet (cannot connect, login refused, the connection broke before the server said
  "354 go ahead" to DATA) → ``RETRY``: the message cannot have been delivered;
- the server answered with a code → ``FAILED`` for 5xx (permanent), ``RETRY`` for 4xx (temporary),
  whether it refused the sender, the recipient or the message after its data;
- the connection dropped or timed out after "354", while or after the message data went out, before
  the server's final answer → ``UNKNOWN``: the server may have accepted it, and it is never resent
  on its own.

The connection is opened by the batch's first send and reused; before a reuse after a pause (more
than ``TRUSTED_FOR_SECONDS`` since the server last accepted a message on it) a NOOP checks the server
still answers on it (servers close idle connections), and a connection that broke is replaced for
the next message. A connection that cannot be opened at all (or a login that is refused) halts the
batch: that send answers ``RETRY``, not counted as an attempt since nothing reached the server, and the
caller hands the batch's other emails back untried.

Each message has an overall deadline, ``AICMO_CAM_SMTP_DEADLINE_SECONDS``, covering the opening of the
connection when it needs one and the message's own conversation; ``EMAIL_TIMEOUT`` only limits each
read, which a server answering a byte at a time never trips. When the deadline runs out the socket is
shut down and the message is judged like any broken connection, by the rule above. The deadline is
not interruptible (``cam.deadlines.cancel_interruptible`` leaves it alone): cut off after "354", a
message's outcome would be unknown, so a worker told to stop stops between messages instead.

When the sender has something to commit before a message may go (``send_when``), the envelope —
``MAIL``, ``RCPT``, ``DATA`` up to the server's 354, which delivers nothing — goes out while the sender
commits, and the message data follows only once the commit said yes. A sender whose commit is under
way already (its ``ready`` has a ``start()`` that said so) has it answered after the envelope, which
then goes out on the caller's thread; otherwise the envelope runs in a thread of the provider's own
while ``ready()`` commits. Told no, the provider drops the connection before any data: a server never
delivers a message whose data did not end. The database's wait and the server's then overlap instead
of adding up.

A server that offers PIPELINING (RFC 2920) gets the envelope as one group, ``MAIL``, ``RCPT`` and ``DATA``
in one write, and answers it in one go: one round trip to the server instead of three, each answer still
judged as its command's. After any refusal the transaction is reset (``RSET``) before the next message,
or the connection closed on a 421; a server that answers 354 although it refused the sender or every
recipient gets no data, its connection dropped. When the sender says which message follows on the same
connection (``prepare(message, follows=True)``, made while it commits), that message's envelope goes in
the same write as the data before it, as RFC 2920 allows: the server answers the data, then the
envelope, and each message costs one round trip instead of two. The guarantee is unchanged: the
envelope delivers nothing, and its data still waits for the sender's commit. An envelope sent ahead for
a message that is not sent next (the sender said no, stopped, or sent another) is abandoned with its
connection, without a ``QUIT``, which a server waiting for data would take as the message's text; so is
the connection after a refused data with an envelope behind it (a server may hang up after refusing).

A mailbox with the OAuth2 login (``auth=oauth2``) logs each new connection in with SASL XOAUTH2
(``smtp_login_mailbox``; the token comes from ``cam.mail_oauth``) instead of a password; a mailbox that
must be reconnected sends nothing and asks nobody.

A mailbox with ``verp_return_path`` sends each message with its signed return path as the envelope
sender (``cam.return_path``): its bounces then prove which email they are about.
"""

from __future__ import annotations

import contextvars
import logging
import re
import smtplib
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend

from cam import deadlines
from cam.deadlines import Deadline
from cam.mail_oauth import OAuthProblem, login_user, oauth_login, xoauth2_string
from cam.models import Mailbox, OutboundEmail
from cam.models.mail import Security
from cam.outreach.providers.base import MailProvider, SendResult, message_id_of
from cam.outreach.providers.smtp_wire import envelope_address, message_bytes, smtp_path
from cam.secrets import MissingSecret, secret_from_env

Status = OutboundEmail.Status
logger = logging.getLogger(__name__)
# A connection on which the server accepted a message this recently is reused without a NOOP first.
TRUSTED_FOR_SECONDS = 0.25
_LEADING_PERIOD = re.compile(rb"(?m)^\.")
# RFC 2920: a client that writes a group of commands before reading any answer makes sure the group fits
# in the connection's send window, or both ends may wait on each other; a larger one goes a command at a time.
PIPELINING_WINDOW = 4000


def _open_data(connection: smtplib.SMTP, sender: str, recipients: list[str], size: int) -> None:
    """``sendmail()``'s conversation up to the server's 354 to DATA, raising what it raises.

    Nothing is delivered yet: a message counts only once its data ends with ``<CRLF>.<CRLF>``. A server
    that offers PIPELINING (RFC 2920: Postfix, Exchange, Gmail and most others do) gets ``MAIL``, the
    ``RCPT``s and ``DATA`` in one write and answers them in one go: one round trip instead of one a
    command, which over the internet is most of an email's time.
    """
    connection.ehlo_or_helo_if_needed()
    mail, rcpts = _envelope_commands(connection, sender, recipients, size)
    group = _group(connection, mail, rcpts)
    if group is not None:
        connection.send(group)
        _envelope_answers(connection, sender, recipients)
        return
    connection.send(mail)
    code, reply = connection.getreply()
    if code != 250:
        _refused(connection, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient, rcpt in zip(recipients, rcpts, strict=True):
        connection.send(rcpt)
        code, reply = connection.getreply()
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            connection.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        connection._rset()  # type: ignore[attr-defined]  # smtplib's own, as sendmail() uses it
        raise smtplib.SMTPRecipientsRefused(refused)
    connection.putcmd("data")
    code, reply = connection.getreply()
    if code != 354:
        _refused(connection, code)
        raise smtplib.SMTPDataError(code, reply)


def _pipelines(connection: smtplib.SMTP) -> bool:
    """Whether the server takes commands in groups (PIPELINING, RFC 2920)."""
    return bool(connection.does_esmtp and connection.has_extn("pipelining"))


def _envelope_commands(connection: smtplib.SMTP, sender: str, recipients: list[str],
                       size: int) -> tuple[str, list[str]]:
    """The envelope's ``MAIL`` and ``RCPT`` lines: smtplib's mail() and rcpt(), with the addresses quoted by
    ``smtp_path`` (no SMTPUTF8 option to handle). Raises ``ValueError`` on a line break, as smtplib does."""
    option = f" size={size}" if connection.does_esmtp and connection.has_extn("size") else ""
    return (_command("mail", f"FROM:{smtp_path(sender)}{option}"),
            [_command("rcpt", f"TO:{smtp_path(recipient)}") for recipient in recipients])


def _envelope_group(connection: smtplib.SMTP, sender: str, recipients: list[str], size: int) -> bytes | None:
    """``MAIL``, the ``RCPT``s and ``DATA`` as one group of commands (RFC 2920), or None where the server does
    not take groups or this one does not fit the window, or cannot be sent as it is."""
    try:
        return _group(connection, *_envelope_commands(connection, sender, recipients, size))
    except ValueError:  # a line break, or not ASCII: its own turn raises it, as sendmail() would
        return None


def _group(connection: smtplib.SMTP, mail: str, rcpts: list[str]) -> bytes | None:
    """The envelope's commands and ``DATA`` as one write, where the server takes groups and it fits the window."""
    if not _pipelines(connection):
        return None
    group = (mail + "".join(rcpts) + _command("data")).encode(connection.command_encoding)
    return group if len(group) <= PIPELINING_WINDOW else None


def _envelope_answers(connection: smtplib.SMTP, sender: str, recipients: list[str]) -> None:
    """The answers to an envelope sent as one group (``_envelope_group``), each judged as its command's."""
    # Every answer is read, in order, whatever the ones before said: the next command's answer must not be
    # taken for one of these. A 421 is the server's last word, and a server may hang up after a refusal:
    # either way what it answered so far is judged, and the connection is not used again.
    expected = len(recipients) + 2
    replies: list[tuple[int, bytes]] = []
    hung_up: smtplib.SMTPServerDisconnected | None = None
    try:
        while len(replies) < expected and (not replies or replies[-1][0] != 421):
            replies.append(connection.getreply())
    except smtplib.SMTPServerDisconnected as exc:
        hung_up = exc
    if not replies:
        assert hung_up is not None  # nothing read, nothing refused: it hung up
        raise hung_up
    whole = len(replies) == expected
    sender_refused = replies[0][0] != 250
    refused = {recipient: reply for recipient, reply in zip(recipients, replies[1:1 + len(recipients)], strict=False)
               if reply[0] not in (250, 251)}
    nobody = len(refused) == len(recipients)
    if not whole:
        connection.close()
    elif replies[-1][0] == 354 and (sender_refused or nobody):
        # DATA taken for a transaction with no sender or no recipient (RFC 2920 says the server must
        # refuse it): no message is handed over, so the connection is dropped before any data.
        connection.close()
    elif replies[-1][0] != 354:
        _refused(connection, replies[-1][0])
    if sender_refused:
        raise smtplib.SMTPSenderRefused(*replies[0], sender)
    if nobody or any(code == 421 for code, _ in refused.values()):
        raise smtplib.SMTPRecipientsRefused(refused)
    if not whole:  # hung up with no refusal of the commands it had answered so far
        assert hung_up is not None  # cut short by a 421 only with a refusal, judged above
        raise hung_up
    if replies[-1][0] != 354:
        raise smtplib.SMTPDataError(*replies[-1])


def _command(name: str, arguments: str = "") -> str:
    """The line ``connection.putcmd(name, arguments)`` sends, refusing a line break as it does."""
    line = f"{name} {arguments}" if arguments else name
    if "\r" in line or "\n" in line:
        raise ValueError(f"command and arguments contain prohibited newline characters: {line!r}")
    return f"{line}\r\n"


def _refused(connection: smtplib.SMTP, code: int) -> None:
    """After the server refused a command of the transaction: a 421 closes the connection (the server
    does); any other refusal resets the transaction, so that the next message's ``MAIL`` is not taken for
    a second one inside it (servers refuse that with a 503, which would fail the next email for good)."""
    if code == 421:
        connection.close()
    else:
        connection._rset()  # type: ignore[attr-defined]  # smtplib's own, as sendmail() uses it


def _finish_data(connection: _SMTP | _SMTP_SSL, data: bytes, meanwhile: Callable[[], object] | None,
                 following: bytes = b"") -> None:
    """The message data and its end, after ``_open_data``; raises ``SMTPDataError`` on a refusal.

    ``meanwhile`` runs while the server takes the message in, before its answer is read: the sender's own
    work for the next message, which then costs no time of its own. ``following`` (the next message's
    envelope, as one group) goes in the same write, right after the data's end: RFC 2920 lets a group
    start with a message's data, and the server answers the data and then each command of the group.
    """
    connection.data_started = True  # from here on the server may accept it
    body = _LEADING_PERIOD.sub(b"..", data)
    connection.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n" + following)
    _run(meanwhile)
    code, reply = connection.getreply()
    if code != 250:
        if not following:
            _refused(connection, code)
        else:
            # No RSET: the server may be waiting for the next message's data. And a server that refuses a
            # message may hang up after saying so, leaving the envelope behind it unanswered: the next
            # message goes again, whole, on a new connection.
            connection.close()
        raise smtplib.SMTPDataError(code, reply)


def _run(meanwhile: Callable[[], object] | None) -> None:
    if meanwhile is not None:
        try:
            meanwhile()
        except Exception:
            logger.exception("The work done while the SMTP server took a message in failed")


DEFAULT_PORTS: dict[str, int] = {Security.NONE: 25, Security.STARTTLS: 587, Security.SSL: 465}


class _DataPhaseTracking:
    """Remembers whether the current message's data may have reached the server.

    ``data_started`` turns true as the message data starts to go, after the server's 354 to DATA
    (``_finish_data``), and the provider clears it before each message: from then on a broken
    connection no longer proves the message was not accepted.
    """

    data_started = False


class _WatchedSocket(smtplib.SMTP):
    """Puts a new connection's socket under the message's deadline before the greeting is read.

    ``_get_socket`` is smtplib's own seam for the socket (SMTP_SSL overrides it too); the greeting,
    EHLO, STARTTLS and the login all happen after it, inside the backend's ``open()``.
    """

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]  # not in typeshed
        deadlines.watch(sock)
        return sock


class _SMTP(_DataPhaseTracking, _WatchedSocket):
    pass


# _WatchedSocket comes after SMTP_SSL, so its _get_socket runs inside SMTP_SSL's, which asks super()
# for the plain socket and then wraps it: the socket is watched before the TLS handshake, which a
# slow server can drip as well.
class _SMTP_SSL(_DataPhaseTracking, smtplib.SMTP_SSL, _WatchedSocket):
    pass


def smtp_login_xoauth2(connection: smtplib.SMTP, user: str, token: str) -> None:
    """Log in on an open SMTP connection with SASL XOAUTH2 (Microsoft 365, Google). Raises
    ``smtplib.SMTPAuthenticationError`` when the server refuses the token."""
    connection.ehlo_or_helo_if_needed()  # auth(), unlike login(), does not say EHLO itself
    # On a refusal the server may first send a 334 with its reason: the empty answer ends the exchange (535).
    connection.auth("XOAUTH2", lambda challenge=None: "" if challenge is not None else xoauth2_string(user, token))


def smtp_login_mailbox(connection: smtplib.SMTP, mailbox: Mailbox) -> None:
    """Log ``mailbox`` in over XOAUTH2 with its access token, refreshed first when it is about to expire, and
    once more when the server refuses a cached one. Raises ``OAuthProblem`` (``ReconnectNeeded``) when no
    token can be had, ``SMTPAuthenticationError`` when the server refuses a fresh one."""
    user = login_user(mailbox, protocol="smtp")
    oauth_login(mailbox, lambda token: smtp_login_xoauth2(connection, user, token),
                refused=(smtplib.SMTPAuthenticationError,))


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend on connections that track the DATA phase; ``login`` logs a new connection in
    when the mailbox does not use a password (XOAUTH2)."""

    connection: _SMTP | _SMTP_SSL | None
    _partial_connection: _SMTP | _SMTP_SSL | None  # Django's, left out of its stubs

    def __init__(self, *args: Any, login: Callable[[smtplib.SMTP], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.login = login

    @property
    def connection_class(self) -> type[_SMTP_SSL | _SMTP]:
        return _SMTP_SSL if self.use_ssl else _SMTP

    def open(self) -> bool | None:
        opened = super().open()
        if opened and self.connection is not None:
            if self.login is not None:
                self.login(self.connection)
            # Said once, here: what the server offers (PIPELINING) decides how each message goes.
            self.connection.ehlo_or_helo_if_needed()
        return opened


def _use_return_path(message: EmailMessage) -> None:
    """Send ``message`` with its signed return path as the envelope sender (``MAIL FROM``), where it has
    one: Django's SMTP backend takes the envelope sender from ``from_email`` and the From header from
    ``extra_headers["From"]`` when that is set, so the From a person reads stays the mailbox's."""
    return_path = getattr(message, "return_path", "")
    if return_path and message.from_email != return_path:
        message.extra_headers.setdefault("From", message.from_email)
        message.from_email = return_path


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class SmtpProvider(MailProvider):
    kind = Mailbox.Provider.SMTP

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(mailbox)
        self.backend: SmtpBackend | None = None
        # When the server last accepted a message on the open connection (time.monotonic()).
        self._accepted_at: float | None = None
        # Envelope senders as sanitised for this batch, by the message's from_email.
        self._senders: dict[str, str] = {}
        # Why nothing in this batch can be sent (a missing password, a server that cannot be reached):
        # every further send answers RETRY with it at once instead of waiting for a timeout again.
        self.batch_error = ""
        self._envelopes: ThreadPoolExecutor | None = None  # send_when()'s, started by its first message
        # The next message's envelope and bytes, made by prepare() while the server took the one before,
        # and whether it is to follow on the same connection.
        self._prepared: tuple[EmailMessage, tuple[str, list[str], bytes]] | None = None
        self._follows = False
        # The message whose envelope went out right after the data of the one before (PIPELINING), on that
        # connection: the server has answered it, or will, and waits for its data.
        self._pipelined: tuple[EmailMessage, smtplib.SMTP] | None = None

    @property
    def port(self) -> int:
        return self.mailbox.smtp_port or DEFAULT_PORTS.get(self.mailbox.smtp_security, 25)

    @property
    def server(self) -> str:
        return f"{self.mailbox.smtp_host}:{self.port}"

    # --- the batch's connection -------------------------------------------------------------------

    def open(self) -> None:
        """Build the backend; the connection itself is opened by the first send and then reused."""
        if self.backend is not None or self.batch_error:
            return
        mailbox = self.mailbox
        if not mailbox.smtp_host:
            self.batch_error = f"Mailbox {mailbox.name!r} has no SMTP host."
            return
        password = ""
        login: Callable[[smtplib.SMTP], None] | None = None
        if mailbox.auth == Mailbox.Auth.OAUTH2:
            if mailbox.needs_reconnect:
                self.batch_error = (f"Mailbox {mailbox.name!r} must be connected to its OAuth2 provider again: press "
                                    f"Connect on its page in the admin.")
                return
            def login(connection: smtplib.SMTP) -> None:
                smtp_login_mailbox(connection, mailbox)
        elif mailbox.smtp_password_env:
            try:
                password = secret_from_env(mailbox.smtp_password_env,
                                           purpose=f"the SMTP password of mailbox {mailbox.name!r}")
            except MissingSecret as exc:
                self.batch_error = str(exc)
                return
        self.backend = SmtpBackend(
            host=mailbox.smtp_host,
            port=self.port,
            username=mailbox.smtp_username if login is None else "",
            password=password,
            login=login,
            use_tls=mailbox.smtp_security == Security.STARTTLS,
            use_ssl=mailbox.smtp_security == Security.SSL,
            timeout=settings.EMAIL_TIMEOUT,
            fail_silently=False,
        )

    def close(self) -> None:
        if self.backend is not None:
            # Saying goodbye (QUIT) is worth one read's wait at most.
            with Deadline(settings.EMAIL_TIMEOUT, "closing the connection to the SMTP server") as deadline:
                if self.backend.connection is not None:
                    deadline.watch(self.backend.connection.sock)
                self._disconnect()
            self.backend = None
        if self._envelopes is not None:
            self._envelopes.shutdown()  # idle: every envelope was waited for
            self._envelopes = None

    def _disconnect(self) -> None:
        self._accepted_at = None
        assert self.backend is not None  # built by open()
        if self._pipelined is not None:
            self._drop_connection()  # no QUIT: a server waiting for a message's data would take it as its text
        try:
            self.backend.close()
        except Exception:  # QUIT on a broken connection; it is closed either way
            self.backend.connection = None
            self.backend._partial_connection = None

    def _connect(self, deadline: Deadline, *, ahead: bool = False) -> bool:
        """Have an open connection, reusing the batch's while the server still answers on it (``ahead``: it
        has this message's envelope already, and its answers will say).

        False (with ``batch_error`` set) when none could be opened, within ``deadline`` or at all.
        """
        assert self.backend is not None  # built by open()
        if self.backend.connection is not None and not ahead and not self._still_open(self.backend.connection):
            self._disconnect()  # the server closed it (idle timeout, a 421): open a new one
        try:
            with deadline.explaining():  # when time ran out, that is what went wrong, whatever broke
                self.backend.open()
                # smtplib reads a greeting cut off mid-line as a whole one ("220..." then nothing):
                # a connection opened as the time ran out is no connection.
                deadline.check()
            return True
        except OAuthProblem as exc:  # no access token to log in with: the mailbox's grant, or its provider
            self.batch_error = str(exc)
        except smtplib.SMTPAuthenticationError as exc:
            if self.mailbox.auth == Mailbox.Auth.OAUTH2:
                self.batch_error = (f"The SMTP server {self.server} refused the OAuth2 login (XOAUTH2) as "
                                    f"{login_user(self.mailbox, protocol='smtp')!r} with a fresh access token: "
                                    f"{exc.smtp_code} {_text(exc.smtp_error)} (does the account have SMTP AUTH "
                                    f"turned on, and did the app get the SMTP scope?).")
            else:
                self.batch_error = (f"The SMTP server {self.server} refused the login as "
                                    f"{self.mailbox.smtp_username!r}: {exc.smtp_code} {_text(exc.smtp_error)} "
                                    f"(check the password in {self.mailbox.smtp_password_env or 'its variable'}).")
        except smtplib.SMTPNotSupportedError as exc:
            self.batch_error = (f"The SMTP server {self.server} does not support what the mailbox asks: "
                                f"{str(exc).rstrip('.')}.")
        except smtplib.SMTPResponseException as exc:
            self.batch_error = (f"The SMTP server {self.server} refused the connection: {exc.smtp_code} "
                                f"{_text(exc.smtp_error)}.")
        except OSError as exc:  # refused, unknown host, timeout, TLS handshake, disconnected on greeting, deadline
            self.batch_error = (f"Could not connect to the SMTP server {self.server}: "
                                f"{type(exc).__name__}: {str(exc).rstrip('.')}.")
        self._disconnect()
        return False

    def _still_open(self, connection: smtplib.SMTP) -> bool:
        if connection.sock is None:
            return False
        if self._accepted_at is not None and time.monotonic() - self._accepted_at < TRUSTED_FOR_SECONDS:
            # It accepted a message a moment ago: no server closes an idle connection that soon, and
            # a NOOP would cost a round trip per email. (One that closes it after an error reply is
            # not trusted: _accepted_at is only set by an acceptance.)
            return True
        try:
            return connection.noop()[0] == 250
        except OSError:
            return False

    # --- sending ----------------------------------------------------------------------------------

    def send(self, message: EmailMessage, *, idempotency_key: str) -> SendResult:
        result = self.send_when(message, idempotency_key=idempotency_key, ready=None)
        assert result is not None  # only a ready() that says no gives none
        return result

    def send_when(self, message: EmailMessage, *, idempotency_key: str, ready: Callable[[], bool] | None,
                  meanwhile: Callable[[], object] | None = None) -> SendResult | None:
        self.open()
        message_id = message_id_of(message)
        _use_return_path(message)
        if self.batch_error:
            return _once_ready(ready, SendResult(Status.RETRY, error=self.batch_error, attempted=False,
                                                 halt_batch=True))
        assert self.backend is not None  # open() built it, as there is no batch_error
        with Deadline(settings.AICMO_CAM_SMTP_DEADLINE_SECONDS, "talking to the SMTP server") as deadline:
            if self.backend.connection is not None:  # a connection opened for an earlier message
                deadline.watch(self.backend.connection.sock)
            return self._send(message, message_id, deadline, ready, meanwhile)

    def prepare(self, message: EmailMessage, *, follows: bool = False) -> None:
        self._prepared, self._follows = None, follows
        try:
            message_id_of(message)  # what send_when() does first, so the bytes are the ones it would make
            _use_return_path(message)
            self._prepared = (message, self._envelope(message))
        except Exception:  # made again at its turn, where the error is reported
            pass

    def _envelope(self, message: EmailMessage) -> tuple[str, list[str], bytes]:
        """The envelope sender, the recipients and the bytes of ``message``, as Django's backend would
        send them (``sanitize_address``, CRLF line ends). Raises what a message that cannot be sent
        as it is raises (a bad address or header)."""
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = self._senders.get(message.from_email)
        if sender is None:  # the same for the whole batch unless each email has its signed return path
            sender = self._senders[message.from_email] = envelope_address(message.from_email, encoding)
        recipients = [envelope_address(address, encoding) for address in message.recipients()]
        return sender, recipients, message_bytes(message)

    def _send(self, message: EmailMessage, message_id: str, deadline: Deadline, ready: Callable[[], bool] | None,
              meanwhile: Callable[[], object] | None = None) -> SendResult | None:
        if not message.recipients():
            return _once_ready(ready, SendResult(Status.FAILED, error="The message has no recipients.",
                                                 attempted=False))
        prepared, self._prepared = self._prepared, None
        ahead = self._pipelined_for(message)
        try:
            sender, recipients, data = (prepared[1] if prepared is not None and prepared[0] is message
                                        else self._envelope(message))
        except Exception as exc:  # no server would ever take it as it is
            return _once_ready(ready, SendResult(
                Status.FAILED, error=f"The message could not be built: {type(exc).__name__}: {exc}", attempted=False))
        if not self._connect(deadline, ahead=ahead):
            return _once_ready(ready, SendResult(Status.RETRY, error=self.batch_error, attempted=False,
                                                 halt_batch=True))
        assert self.backend is not None  # _connect() succeeded
        try:
            # The batch's connection, directly: Django's send_messages() would take a lock, check the
            # connection and sanitise the sender again for every message.
            connection = self.backend.connection
            assert connection is not None  # _connect() opened it
            if ready is None:
                connection.data_started = False
                self._open(connection, sender, recipients, len(data), ahead=ahead)
                _finish_data(connection, data, meanwhile, self._following(connection))
            elif not self._send_when_ready(connection, sender, recipients, data, ready, meanwhile, ahead=ahead):
                return None
        except _ReadyRaised as raised:
            raise raised.error from None
        except smtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply)
                                 in exc.recipients.items())
            code = min(code for code, _ in exc.recipients.values())  # any temporary refusal may pass later
            return self._answered(code, f"The SMTP server {self.server} refused the recipient: {refusals}")
        except smtplib.SMTPSenderRefused as exc:
            return self._answered(exc.smtp_code, f"The SMTP server {self.server} refused the sender "
                                                 f"{exc.sender}: {exc.smtp_code} {_text(exc.smtp_error)}")
        except smtplib.SMTPDataError as exc:
            return self._answered(exc.smtp_code, f"The SMTP server {self.server} refused the message: "
                                                 f"{exc.smtp_code} {_text(exc.smtp_error)}")
        except Exception as exc:  # every other failure is classified, never raised
            return self._broken(deadline.explain(exc), message_id)
        self._accepted_at = time.monotonic()
        return SendResult(Status.SENT, provider_message_id=message_id)

    def _send_when_ready(self, connection: _SMTP | _SMTP_SSL, sender: str, recipients: list[str], data: bytes,
                         ready: Callable[[], bool], meanwhile: Callable[[], object] | None, *, ahead: bool) -> bool:
        """``sendmail()`` with ``ready()`` called while the envelope goes out: in the provider's thread, or
        first on this one when ``ready`` has started its work already (its ``start()`` said so) or the
        envelope went with the message before (``ahead``: only its answers are left to read); the data
        follows only when it said yes. False: told no, nothing was handed over."""
        connection.data_started = False
        start = getattr(ready, "start", None)
        if (start is not None and start()) or ahead:
            envelope: Future[None] = Future()  # gone out here, with no hand-over to another thread
            try:
                self._open(connection, sender, recipients, len(data), ahead=ahead)
                envelope.set_result(None)
            except BaseException as exc:  # ready() is asked all the same: its work must be finished
                envelope.set_exception(exc)
        else:
            if self._envelopes is None:
                self._envelopes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cam-smtp-envelope")
            # In the caller's context, so that a deadline it entered watches any socket the thread opens.
            envelope = self._envelopes.submit(contextvars.copy_context().run, _open_data, connection, sender,
                                              recipients, len(data))
        if _pipelines(connection):
            # The sender's work for the next message now, while the database commits, so that the next
            # envelope is ready to go with this message's data.
            _run(meanwhile)
            meanwhile = None
        try:
            go = ready()
        except Exception as exc:
            self._abandon(envelope)
            raise _ReadyRaised(exc) from exc  # through _send's handlers, which judge the server's part only
        if not go:
            self._abandon(envelope)
            return False
        envelope.result()  # what the server said to the envelope, raised as sendmail() raises it
        _finish_data(connection, data, meanwhile, self._following(connection))
        return True

    def _following(self, connection: smtplib.SMTP) -> bytes:
        """The prepared message's envelope, to go with the data of the message being sent, when the sender
        said it follows on this connection and the server takes commands in groups: its answers are read at
        its own turn (``_pipelined_for``), one round trip to the server saved for every message."""
        if not self._follows or self._prepared is None:
            return b""
        message, (sender, recipients, data) = self._prepared
        group = _envelope_group(connection, sender, recipients, len(data))
        if group is None:
            return b""
        self._pipelined = (message, connection)
        return group

    def _pipelined_for(self, message: EmailMessage) -> bool:
        """Whether ``message``'s envelope went out with the data of the message before, on the connection
        still open: it stays recorded until its answers are read (``_open``), so that whatever breaks
        meanwhile drops the connection without a word. Another message's envelope waiting for its data is
        abandoned with its connection."""
        pipelined = self._pipelined
        if pipelined is None or self.backend is None:
            return False
        connection = self.backend.connection
        if connection is not pipelined[1]:  # replaced since
            self._pipelined = None
            return False
        if pipelined[0] is message and connection.sock is not None:
            return True
        self._drop_connection()
        return False

    def _open(self, connection: _SMTP | _SMTP_SSL, sender: str, recipients: list[str], size: int, *,
              ahead: bool) -> None:
        """``_open_data``, or with ``ahead`` the answers to the envelope that went with the message before."""
        if not ahead:
            _open_data(connection, sender, recipients, size)
            return
        try:
            _envelope_answers(connection, sender, recipients)
        finally:
            self._pipelined = None  # answered or not, no longer waiting for its data unseen

    def _drop_connection(self) -> None:
        """Close the connection without a word: the server delivers no message whose data did not end."""
        self._pipelined = None
        if self.backend is not None and self.backend.connection is not None:
            self.backend.connection.close()  # no QUIT: in the data phase it would be read as the message
            self.backend.connection = None
            self._accepted_at = None

    def _abandon(self, envelope: Future[None]) -> None:
        """Leave the message undelivered: once the envelope is through, drop the connection before any data."""
        if envelope.exception() is None:
            self._drop_connection()

    def _answered(self, code: int, error: str) -> SendResult:
        """The server answered with a code: it did not accept the message."""
        if 500 <= code < 600:
            return SendResult(Status.FAILED, error=error)
        if 400 <= code < 500:
            return SendResult(Status.RETRY, error=error)
        # Not a reply code at all (a garbled answer): after the data this may have been an acceptance.
        status = Status.UNKNOWN if self._data_started() else Status.RETRY
        return SendResult(status, error=error)

    def _data_started(self) -> bool:
        assert self.backend is not None  # called after a send
        connection = self.backend.connection
        return bool(connection is not None and connection.data_started)

    def _broken(self, exc: Exception, message_id: str) -> SendResult:
        data_started = self._data_started()
        self._disconnect()  # the next message of the batch gets a new connection
        what = f"{type(exc).__name__}: {exc}"
        if data_started:
            return SendResult(Status.UNKNOWN, provider_message_id=message_id, error=(
                f"The connection to the SMTP server {self.server} broke after the message was handed over, "
                f"before the server confirmed it ({what}). It may have been delivered: check before resending."))
        if not isinstance(exc, OSError):  # building the message failed: no server would ever take it
            return SendResult(Status.FAILED, error=f"The message could not be built: {what}", attempted=False)
        return SendResult(Status.RETRY, error=f"The connection to the SMTP server {self.server} broke before "
                                              f"the message was sent ({what}).")


class _ReadyRaised(Exception):
    """What the sender's ``ready()`` raised, on its way back to the sender."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _once_ready(ready: Callable[[], bool] | None, result: SendResult) -> SendResult | None:
    """``result`` of a message that never reached the server, once ``ready`` (if any) was asked, as
    ``send_when`` promises it is: None when it said no."""
    return result if ready is None or ready() else None


# For other conversations with an SMTP server (cam.mailboxes.connection_test): the same deadline-watched sockets.
WatchedSMTP, WatchedSMTPSSL = _SMTP, _SMTP_SSL
