"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records every message and can refuse on cue.

    def test_it_sends(smtp_server):
        smtp_server.answer_rcpt("nobody@example.test", "550 5.1.1 No such user")
        smtp_server.answer_data("451 4.3.0 Try again later", "250 OK")
        ...  # point the code under test at smtp_server.host, smtp_server.port
        (message,) = smtp_server.messages
        assert message.parsed["Subject"] == "Hello"

``received`` holds every transaction whose data arrived, with the reply it got; ``messages`` only the
accepted ones. ``sessions`` has one entry (the client's address) per HELO/EHLO, so a test can count
the connections a client opened. Scripted DATA replies are given out in order and the last one
repeats; besides a reply line, a DATA reply may be ``DROP`` (close the connection without answering,
after the message arrived), ``Stall(seconds)`` (answer ``250 OK`` that much later) or
``Call(action)`` (run ``action`` once the message arrived, then answer ``250 OK``).
``answer_data_command`` answers the DATA command itself instead of 354.

``pipelining=True`` offers PIPELINING (RFC 2920) in the EHLO answer, as Postfix and most servers do;
``pipelined`` then lists each ``MAIL``/``RCPT`` that was read with the client's next command already
there, which a client only does when it does not wait for each answer; ``followed`` lists the first
recipient of each message whose data arrived with the client's next command behind it (the next
message's envelope, sent in the same write as this message's data).
"""

from __future__ import annotations

import asyncio
import base64
import email
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import cached_property

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult


@dataclass(frozen=True)
class Stall:
    """Hold the DATA reply back for ``seconds``, e.g. to make a client time out after sending."""

    seconds: float
    then: str = "250 OK"


@dataclass(frozen=True)
class Call:
    """Run ``action`` (in the server's thread) once the message has arrived, then answer ``then``: a
    test's way to make something happen at an exact point of a batch, e.g. cut the database."""

    action: Callable[[], object]
    then: str = "250 OK"


@dataclass(frozen=True)
class HangUp:
    """Answer ``reply`` to ``MAIL``, ``RCPT`` or a message's data, then close the connection, as some servers
    do after a refusal; commands the client sent ahead are never answered."""

    reply: str


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
DataReply = str | Stall | Call | HangUp | _Drop


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int]
    reply: str  # what the server answered to the data: "250 OK", "451 …", "drop", "stall"

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")

    @cached_property
    def parsed(self) -> EmailMessage:
        """The message as the recipient would read it (lines end with "\\n", as Python writes them)."""
        return email.message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=default_policy)


@dataclass
class _Script:
    rcpt: dict[str, str | Call | HangUp] = field(default_factory=dict)
    mail: dict[str, str | HangUp] = field(default_factory=dict)
    data: list[DataReply] = field(default_factory=list)
    data_command: str = ""


def free_port() -> int:
    """A port nothing listens on (bound and released at once), also good for "connection refused"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpTestServer:
    """Start with ``start()`` (or use as a context manager). ``auth=(username, password)`` is the only
    login accepted (``logins`` records who logged in); ``idle_timeout`` closes a connection that has been
    quiet that many seconds, as real servers do."""

    host = "127.0.0.1"

    def __init__(self, *, auth: tuple[str, str] | None = None, idle_timeout: float = 300,
                 xoauth2: Callable[[str, str], bool] | None = None, pipelining: bool = False) -> None:
        self.port = free_port()
        # SASL XOAUTH2: the only mechanism offered when set; ``xoauth2(user, token)`` says whether to let it in.
        self._xoauth2 = xoauth2
        self.received: list[ReceivedMessage] = []
        self.sessions: list[tuple[str, int]] = []
        self.logins: list[str] = []
        self.rcpts: list[str] = []  # every RCPT TO the server was asked, accepted or not, in order
        self.pipelining = pipelining
        self.pipelined: list[str] = []  # "MAIL <address>" / "RCPT <address>" read with more commands waiting
        self.followed: list[str] = []  # messages whose data arrived with more commands behind it
        self._auth = auth
        self._idle_timeout = idle_timeout
        self._script = _Script()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # --- scripting and inspection ---------------------------------------------------------------

    def answer_rcpt(self, address: str, reply: str | Call | HangUp) -> None:
        """Answer ``RCPT TO:<address>`` with ``reply`` (e.g. ``550 5.1.1 No such user``, or a ``HangUp``) every
        time, or a ``Call``'s answer once, after its action."""
        with self._lock:
            self._script.rcpt[address.lower()] = reply

    def answer_mail(self, address: str, reply: str | HangUp) -> None:
        """Answer ``MAIL FROM:<address>`` with ``reply`` (or a ``HangUp``) every time."""
        with self._lock:
            self._script.mail[address.lower()] = reply

    def answer_data(self, *replies: DataReply) -> None:
        """Answer the next messages' data with ``replies`` in turn; the last one repeats."""
        if not replies:
            raise ValueError("Script at least one reply.")
        with self._lock:
            self._script.data = list(replies)

    def answer_data_command(self, reply: str) -> None:
        """Answer the DATA command with ``reply`` (e.g. ``451 4.3.2 System not accepting messages``) instead
        of 354, every time; an empty ``reply`` goes back to 354."""
        with self._lock:
            self._script.data_command = reply

    def answer_as_usual(self) -> None:
        """Forget every scripted answer: from now on the server accepts every message."""
        with self._lock:
            self._script = _Script()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return [message for message in self.received if message.accepted]

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SmtpTestServer:
        options = {"timeout": self._idle_timeout}
        if self._auth is not None:
            # A login is checked when the client offers one (over plain text: loopback only).
            options |= {"authenticator": self._authenticate, "auth_require_tls": False}
        handler = _Handler(self)
        if self._xoauth2 is not None:
            handler = _XOAuth2Handler(self)
            options |= {"auth_require_tls": False, "auth_exclude_mechanism": ["LOGIN", "PLAIN"]}
        self._controller = _Controller(handler, hostname=self.host, port=self.port, ready_timeout=5, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- serving (runs in the server's thread) ---------------------------------------------------

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        if ok:
            with self._lock:
                self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def _next_data_reply(self) -> DataReply:
        with self._lock:
            script = self._script.data
            if not script:
                return "250 OK"
            return script.pop(0) if len(script) > 1 else script[0]

    def _record(self, envelope, peer, reply: str) -> None:
        with self._lock:
            self.received.append(ReceivedMessage(
                mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), data=envelope.original_content,
                peer=peer, reply=reply))


class _SMTP(SMTP):
    """aiosmtpd's server, answering the DATA command as scripted (it has no hook before its 354)."""

    async def smtp_DATA(self, arg: str) -> None:
        server = self.event_handler.server
        with server._lock:
            reply = server._script.data_command
        if reply:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    def _note_pipelined(self, smtp, command: str) -> None:
        if smtp._reader._buffer:  # the client's next command arrived before this one was answered
            with self.server._lock:
                self.server.pipelined.append(command)

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.server._lock:
            self.server.sessions.append(session.peer)
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, smtp, session, envelope, hostname):
        session.host_name = hostname
        with self.server._lock:
            self.server.sessions.append(session.peer)
        return f"250 {smtp.hostname}"

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        self._note_pipelined(smtp, f"MAIL {address}")
        with self.server._lock:
            reply = self.server._script.mail.get(address.lower())
        if isinstance(reply, HangUp):
            await _hang_up(smtp, reply)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        self._note_pipelined(smtp, f"RCPT {address}")
        with self.server._lock:
            self.server.rcpts.append(address)
            reply = self.server._script.rcpt.get(address.lower())
        if isinstance(reply, Call):  # once: the action runs while the client waits for this answer
            with self.server._lock:
                self.server._script.rcpt.pop(address.lower(), None)
            await asyncio.get_running_loop().run_in_executor(None, reply.action)
            reply = None if reply.then.startswith("250") else reply.then
        if isinstance(reply, HangUp):
            await _hang_up(smtp, reply)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        if smtp._reader._buffer:  # the next command came with the data, before the data was answered
            with self.server._lock:
                self.server.followed.append(envelope.rcpt_tos[0])
        reply = self.server._next_data_reply()
        if reply is DROP:
            # The message arrived, and the client never learns whether it was accepted.
            self.server._record(envelope, session.peer, "drop")
            smtp.transport.abort()
            raise asyncio.CancelledError
        if isinstance(reply, Call):
            self.server._record(envelope, session.peer, reply.then)
            await asyncio.get_running_loop().run_in_executor(None, reply.action)
            return reply.then
        if isinstance(reply, HangUp):
            self.server._record(envelope, session.peer, reply.reply)  # refused, then the connection closed
            await _hang_up(smtp, reply)
        if isinstance(reply, Stall):
            self.server._record(envelope, session.peer, reply.then)  # accepted; the client may not wait
            await asyncio.sleep(reply.seconds)
            return reply.then
        self.server._record(envelope, session.peer, reply)
        return reply


async def _hang_up(smtp, hang_up: HangUp) -> None:
    """Answer, then close the connection once the answer went out; nothing after it is read."""
    await smtp.push(hang_up.reply)
    smtp.transport.close()
    raise asyncio.CancelledError


class _XOAuth2Handler(_Handler):
    """aiosmtpd offers every ``auth_<MECHANISM>`` coroutine of the handler, and calls it with the AUTH line."""

    async def auth_XOAUTH2(self, smtp, args):
        if len(args) == 2:  # AUTH XOAUTH2 <initial response>
            try:
                blob = base64.b64decode(args[1])
            except ValueError:
                return AuthResult(success=False, handled=False)
        else:
            blob = await smtp.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        bearer, user = fields.get("auth", ""), fields.get("user", "")
        if bearer.startswith("Bearer ") and self.server._xoauth2(user, bearer.removeprefix("Bearer ")):
            with self.server._lock:
                self.server.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)  # 535 5.7.8
