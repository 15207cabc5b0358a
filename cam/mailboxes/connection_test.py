"""Testing a mailbox's connection: log in to its SMTP and IMAP servers, list its folders, say how it went.

Each step is reported in words with how long it took, and the first that fails says what to check
("IMAP login refused: AUTHENTICATIONFAILED … — check the password variable CAM_SECRET_X"). Secrets
never appear: only the name of the variable that holds one. Each server's conversation is bounded as a
whole by the deadlines sending and polling use (``AICMO_CAM_SMTP_DEADLINE_SECONDS``,
``AICMO_CAM_IMAP_DEADLINE_SECONDS``), on top of each read's timeout.

How a mailbox logs in depends on its kind of authentication: ``SMTP_LOGINS`` and ``IMAP_LOGINS`` hold one
small function per kind — a password, or OAuth2 (XOAUTH2, through the same login the sender and the
poller use, so the test refreshes the access token as they would).
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from cam.deadlines import Deadline
from cam.inbox.imap import WatchedIMAPClient, imap_login_mailbox
from cam.mail_oauth import OAuthProblem
from cam.models import Mailbox, Security
from cam.outreach.providers.smtp import WatchedSMTP, WatchedSMTPSSL, smtp_login_mailbox
from cam.secrets import MissingSecret, secret_from_env

SMTP_DEFAULT_PORTS: dict[str, int] = {Security.SSL: 465, Security.STARTTLS: 587, Security.NONE: 25}
IMAP_DEFAULT_PORTS: dict[str, int] = {Security.SSL: 993, Security.STARTTLS: 143, Security.NONE: 143}


class StepFailed(Exception):
    """A step went wrong; the message says what to check."""


@dataclass(frozen=True)
class Step:
    server: str  # "SMTP" or "IMAP"
    name: str  # "connect", "EHLO", "STARTTLS", "login", "list folders"
    ok: bool
    words: str
    seconds: float

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.server} {self.name} ({self.seconds * 1000:.0f} ms): {self.words}"


@dataclass
class ConnectionReport:
    mailbox: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def lines(self) -> list[str]:
        return [step.line() for step in self.steps]


def auth_kind(mailbox: Mailbox) -> str:
    """How the mailbox logs in: "password" or "oauth2"."""
    return mailbox.auth or "password"


def _password(mailbox: Mailbox, variable: str, server: str) -> str:
    if not variable:
        return ""
    try:
        return secret_from_env(variable, purpose=f"the {server} password of mailbox {mailbox.name!r}")
    except MissingSecret as exc:
        raise StepFailed(str(exc)) from exc


def _smtp_password_login(mailbox: Mailbox, client: smtplib.SMTP) -> str:
    if not mailbox.smtp_password_env:
        return "no login: the mailbox names no password variable"
    password = _password(mailbox, mailbox.smtp_password_env, "SMTP")
    try:
        client.login(mailbox.smtp_username, password)
    except smtplib.SMTPAuthenticationError as exc:
        raise StepFailed(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)} — check the username "
                         f"{mailbox.smtp_username!r} and the password variable {mailbox.smtp_password_env}") from exc
    return f"logged in as {mailbox.smtp_username!r} (password from {mailbox.smtp_password_env})"


def _imap_password_login(mailbox: Mailbox, client: IMAPClient) -> str:
    username = mailbox.imap_username or mailbox.from_email
    password = _password(mailbox, mailbox.imap_password_env, "IMAP")
    try:
        client.login(username, password)
    except LoginError as exc:
        raise StepFailed(f"IMAP login refused: {_text(exc)} — check the username {username!r} and the password "
                         f"variable {mailbox.imap_password_env or '(none named)'}") from exc
    return f"logged in as {username!r} (password from {mailbox.imap_password_env})"


def _oauth_words(mailbox: Mailbox) -> str:
    return f"logged in as {mailbox.oauth_account or mailbox.from_email!r} with OAuth2 (XOAUTH2)"


def _oauth_problem(server: str, exc: Exception) -> StepFailed:
    return StepFailed(f"{server} OAuth2 login failed: {_text(exc)} — press Connect (or Reconnect) on the mailbox's "
                      f"page, and check that the app is registered with the scopes docs/mailboxes-oauth.md lists")


def _smtp_oauth_login(mailbox: Mailbox, client: smtplib.SMTP) -> str:
    try:
        smtp_login_mailbox(client, mailbox)
    except (OAuthProblem, smtplib.SMTPAuthenticationError) as exc:
        raise _oauth_problem("SMTP", exc) from exc
    return _oauth_words(mailbox)


def _imap_oauth_login(mailbox: Mailbox, client: IMAPClient) -> str:
    try:
        imap_login_mailbox(client, mailbox)
    except (OAuthProblem, LoginError) as exc:
        raise _oauth_problem("IMAP", exc) from exc
    return _oauth_words(mailbox)


# One login function per kind of authentication; each returns what it did in words or raises StepFailed.
SMTP_LOGINS: dict[str, Callable[[Mailbox, smtplib.SMTP], str]] = {
    "password": _smtp_password_login, "oauth2": _smtp_oauth_login}
IMAP_LOGINS: dict[str, Callable[[Mailbox, IMAPClient], str]] = {
    "password": _imap_password_login, "oauth2": _imap_oauth_login}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return " ".join(str(value).split()).rstrip(".")


class _Run:
    """Times each step and records it; the first failure ends the server's conversation."""

    def __init__(self, report: ConnectionReport, server: str) -> None:
        self.report, self.server = report, server

    @contextmanager
    def step(self, name: str, deadline: Deadline) -> Iterator[list[str]]:
        said: list[str] = []
        started = time.monotonic()
        try:
            with deadline.explaining():
                yield said
        except StepFailed as exc:
            self._add(name, False, str(exc), started)
            raise
        except (OSError, smtplib.SMTPException, IMAPClient.Error) as exc:
            words = f"{self.server} {name} failed: {type(exc).__name__}: {_text(exc) or 'no reason given'}"
            self._add(name, False, words, started)
            raise StepFailed(words) from exc
        self._add(name, True, said[0] if said else "done", started)

    def _add(self, name: str, ok: bool, words: str, started: float) -> None:
        self.report.steps.append(Step(self.server, name, ok, words, time.monotonic() - started))


def _smtp_steps(mailbox: Mailbox, report: ConnectionReport) -> None:
    if mailbox.provider != Mailbox.Provider.SMTP:
        report.steps.append(Step("SMTP", "skipped", True, f"not tested: the mailbox sends through "
                                 f"{Mailbox.Provider(mailbox.provider).label}", 0.0))
        return
    if not mailbox.smtp_host:
        report.steps.append(Step("SMTP", "connect", False, "the mailbox has no SMTP host", 0.0))
        return
    port = mailbox.smtp_port or SMTP_DEFAULT_PORTS.get(mailbox.smtp_security, 25)
    run = _Run(report, "SMTP")
    client: smtplib.SMTP | None = None
    try:
        with Deadline(settings.AICMO_CAM_SMTP_DEADLINE_SECONDS, "testing the SMTP connection") as deadline:
            with run.step("connect", deadline) as said:
                if mailbox.smtp_security == Security.SSL:
                    client = WatchedSMTPSSL(mailbox.smtp_host, port, timeout=settings.EMAIL_TIMEOUT,
                                            context=ssl.create_default_context())
                else:
                    client = WatchedSMTP(mailbox.smtp_host, port, timeout=settings.EMAIL_TIMEOUT)
                said.append(f"connected to {mailbox.smtp_host}:{port}"
                            + (" over SSL" if mailbox.smtp_security == Security.SSL else ""))
            assert client is not None  # the step above raised otherwise
            with run.step("EHLO", deadline) as said:
                code, answer = client.ehlo()
                if code != 250:
                    raise StepFailed(f"SMTP EHLO refused: {code} {_text(answer)}")
                said.append("the server offers " + (", ".join(sorted(client.esmtp_features)) or "no extensions"))
            if mailbox.smtp_security == Security.STARTTLS:
                with run.step("STARTTLS", deadline) as said:
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                    said.append("the connection is encrypted")
            with run.step("login", deadline) as said:
                said.append(SMTP_LOGINS[auth_kind(mailbox)](mailbox, client))
    except StepFailed:
        pass
    finally:
        if client is not None:
            try:
                client.quit()
            except Exception:  # a broken connection: nothing to say goodbye to
                client.close()


def _imap_steps(mailbox: Mailbox, report: ConnectionReport) -> None:
    if not mailbox.imap_host:
        report.steps.append(Step("IMAP", "skipped", True, "not tested: the mailbox has no IMAP host (replies are "
                                 "not read)", 0.0))
        return
    port = mailbox.imap_port or IMAP_DEFAULT_PORTS.get(mailbox.imap_security, 993)
    run = _Run(report, "IMAP")
    client: IMAPClient | None = None
    try:
        with Deadline(settings.AICMO_CAM_IMAP_DEADLINE_SECONDS, "testing the IMAP connection") as deadline:
            with run.step("connect", deadline) as said:
                client = WatchedIMAPClient(mailbox.imap_host, port=port, ssl=mailbox.imap_security == Security.SSL,
                                           ssl_context=ssl.create_default_context(),
                                           timeout=settings.AICMO_CAM_IMAP_TIMEOUT_SECONDS)
                said.append(f"connected to {mailbox.imap_host}:{port}"
                            + (" over SSL" if mailbox.imap_security == Security.SSL else ""))
            assert client is not None  # the step above raised otherwise
            if mailbox.imap_security == Security.STARTTLS:
                with run.step("STARTTLS", deadline) as said:
                    client.starttls(ssl.create_default_context())
                    said.append("the connection is encrypted")
            with run.step("login", deadline) as said:
                said.append(IMAP_LOGINS[auth_kind(mailbox)](mailbox, client))
            with run.step("list folders", deadline) as said:
                names = sorted(name for _, _, name in client.list_folders())
                said.append(f"{len(names)} folder(s): {', '.join(names)}")
    except StepFailed:
        pass
    finally:
        if client is not None:
            try:
                client.logout()
            except Exception:  # a broken connection: nothing to say goodbye to
                client.shutdown()


def mailbox_connection_test(mailbox: Mailbox) -> ConnectionReport:
    """Log in to ``mailbox``'s SMTP and IMAP servers and list its folders, step by step. Changes nothing."""
    report = ConnectionReport(mailbox=mailbox.name)
    _smtp_steps(mailbox, report)
    _imap_steps(mailbox, report)
    return report
