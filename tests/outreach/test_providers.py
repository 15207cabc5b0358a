"""The mail providers against real servers on loopback: what arrives, and what each outcome means."""

from __future__ import annotations

import email
import io
import time
from email.policy import default as default_policy

import pytest
from django.core.mail import EmailMultiAlternatives
from pyrate_limiter import InMemoryStateStore

from cam.models import Mailbox, OutboundEmail
from cam.models.mail import Security
from cam.outreach.providers.base import SendResult, get_provider
from cam.outreach.providers.console import ConsoleProvider
from cam.outreach.providers.resend import RESEND_TAGS, ResendProvider
from cam.outreach.providers.resend_rate import SharedRateLimit
from cam.outreach.providers.smtp import SmtpProvider
from tests.factories import MailboxFactory
from tests.servers.http import Reply
from tests.servers.smtp import DROP, SmtpTestServer, Stall, free_port

Status = OutboundEmail.Status
UNSUBSCRIBE = "<https://cam.example.com/u/tok3n/>, <mailto:unsubscribe@outreach.test?subject=unsubscribe>"


def outreach_message(to: str = "anna@company.test", *, message_id: str = "<step2.42@outreach.test>",
                     subject: str = "Re: Quick question") -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=subject,
        body="Hi Anna,\n\nJust following up on my last note.\n",
        from_email="Alex Sender <sender@outreach.test>",
        to=[to],
        headers={
            "Message-ID": message_id,
            "In-Reply-To": "<step1.42@outreach.test>",
            "References": "<step1.42@outreach.test>",
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message.attach_alternative("<p>Hi Anna,</p><p>Just following up on my last note.</p>", "text/html")
    return message


# --- registry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "provider_class"), [
    (Mailbox.Provider.CONSOLE, ConsoleProvider),
    (Mailbox.Provider.SMTP, SmtpProvider),
    (Mailbox.Provider.RESEND, ResendProvider),
])
def test_it_picks_the_provider_of_the_mailbox(kind, provider_class):
    assert type(get_provider(MailboxFactory.build(provider=kind))) is provider_class


# --- console ----------------------------------------------------------------------------------------


def test_it_writes_the_message_to_the_console_and_reports_it_sent():
    stream = io.StringIO()

    with ConsoleProvider(MailboxFactory.build(), stream=stream) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result == SendResult(Status.SENT, provider_message_id="<step2.42@outreach.test>")
    written = email.message_from_string(stream.getvalue().split("\n" + "-" * 79)[0], policy=default_policy)
    assert written["Subject"] == "Re: Quick question"
    assert written["Message-ID"] == "<step2.42@outreach.test>"
    assert written["List-Unsubscribe"] == UNSUBSCRIBE
    assert written["To"] == "anna@company.test"


def test_it_gives_a_message_without_a_message_id_one_and_reports_that_one(capsys):
    message = outreach_message()
    del message.extra_headers["Message-ID"]

    with ConsoleProvider(MailboxFactory.build()) as provider:
        result = provider.send(message, idempotency_key="1")

    assert result.status == Status.SENT
    assert result.provider_message_id.endswith("@outreach.test>")
    assert f"Message-ID: {result.provider_message_id}" in capsys.readouterr().out


# --- SMTP -------------------------------------------------------------------------------------------


def smtp_mailbox(server: SmtpTestServer, **fields) -> Mailbox:
    fields = {"smtp_security": Security.NONE, **fields}
    return MailboxFactory.build(provider=Mailbox.Provider.SMTP, smtp_host=server.host, smtp_port=server.port,
                                **fields)


def test_it_delivers_the_message_with_its_headers_and_both_parts(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message(), idempotency_key="42")

    assert result == SendResult(Status.SENT, provider_message_id="<step2.42@outreach.test>")
    (received,) = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("sender@outreach.test", ["anna@company.test"])
    parsed = received.parsed
    assert parsed["Message-ID"] == "<step2.42@outreach.test>"
    assert parsed["In-Reply-To"] == "<step1.42@outreach.test>"
    assert parsed["References"] == "<step1.42@outreach.test>"
    assert parsed["List-Unsubscribe"] == UNSUBSCRIBE
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Subject"] == "Re: Quick question"
    assert parsed.get_body(("plain",)).get_content() == "Hi Anna,\n\nJust following up on my last note.\n"
    assert parsed.get_body(("html",)).get_content().strip() == (
        "<p>Hi Anna,</p><p>Just following up on my last note.</p>")


def test_it_sends_a_batch_over_one_connection(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        results = [provider.send(outreach_message(f"lead{n}@company.test", message_id=f"<{n}@outreach.test>"),
                                 idempotency_key=str(n)) for n in range(3)]

    assert [result.status for result in results] == [Status.SENT] * 3
    assert [message.rcpt_tos for message in smtp_server.messages] == [
        ["lead0@company.test"], ["lead1@company.test"], ["lead2@company.test"]]
    assert len(smtp_server.sessions) == 1
    assert len({message.peer for message in smtp_server.messages}) == 1


def test_it_fails_a_recipient_refused_permanently_and_goes_on_with_the_batch(smtp_server):
    smtp_server.answer_rcpt("nobody@company.test", "550 5.1.1 <nobody@company.test>: Recipient address rejected")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        refused = provider.send(outreach_message("nobody@company.test"), idempotency_key="1")
        accepted = provider.send(outreach_message("anna@company.test"), idempotency_key="2")

    assert refused.status == Status.FAILED
    assert "550 5.1.1 <nobody@company.test>: Recipient address rejected" in refused.error
    assert accepted.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.messages] == [["anna@company.test"]]
    assert len(smtp_server.sessions) == 1


def test_it_retries_a_recipient_refused_for_now(smtp_server):
    smtp_server.answer_rcpt("anna@company.test", "451 4.7.1 Greylisted, please try again later")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message("anna@company.test"), idempotency_key="1")

    assert result.status == Status.RETRY
    assert "451 4.7.1 Greylisted, please try again later" in result.error
    assert smtp_server.received == []


def test_it_fails_a_sender_the_server_refuses(smtp_server):
    smtp_server.answer_mail("sender@outreach.test", "553 5.7.1 Sender address not owned by user")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.FAILED
    assert "553 5.7.1 Sender address not owned by user" in result.error


@pytest.mark.parametrize(("reply", "status"), [
    ("451 4.3.0 Temporary local problem, try again", Status.RETRY),
    ("554 5.7.1 Message rejected as spam", Status.FAILED),
])
def test_it_follows_the_servers_answer_to_the_message_data(smtp_server, reply, status):
    smtp_server.answer_data(reply)

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == status
    assert reply in result.error


def test_it_fails_a_message_that_cannot_be_built_and_keeps_the_connection_for_the_next(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        broken = provider.send(outreach_message("anna@company@test"), idempotency_key="1")
        fine = provider.send(outreach_message("ben@company.test"), idempotency_key="2")

    assert (broken.status, broken.attempted) == (Status.FAILED, False)  # nothing of it reached the server
    assert 'Invalid address "anna@company@test"' in broken.error
    assert fine.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.messages] == [["ben@company.test"]]


def test_it_retries_when_the_server_cannot_be_reached_and_stops_trying_for_the_batch():
    mailbox = MailboxFactory.build(provider=Mailbox.Provider.SMTP, smtp_host="127.0.0.1", smtp_port=free_port(),
                                   smtp_security=Security.NONE)

    with SmtpProvider(mailbox) as provider:
        results = [provider.send(outreach_message(), idempotency_key=str(n)) for n in range(2)]

    assert [result.status for result in results] == [Status.RETRY, Status.RETRY]
    assert "Could not connect to the SMTP server 127.0.0.1:" in results[0].error
    assert "Connection refused" in results[0].error
    assert results[1].error == results[0].error


def test_it_reports_unknown_when_the_connection_drops_after_the_data_and_reconnects_for_the_next(smtp_server):
    smtp_server.answer_data(DROP, "250 OK")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        dropped = provider.send(outreach_message("anna@company.test", message_id="<1@outreach.test>"),
                                idempotency_key="1")
        following = provider.send(outreach_message("ben@company.test", message_id="<2@outreach.test>"),
                                  idempotency_key="2")

    assert dropped.status == Status.UNKNOWN
    assert dropped.provider_message_id == "<1@outreach.test>"
    assert "may have been delivered" in dropped.error
    # The server did get the whole message; only its answer was lost.
    assert [(message.rcpt_tos, message.reply) for message in smtp_server.received] == [
        (["anna@company.test"], "drop"), (["ben@company.test"], "250 OK")]
    assert following.status == Status.SENT
    assert len(smtp_server.sessions) == 2


def test_it_reports_unknown_when_the_server_does_not_confirm_the_data_in_time(smtp_server, settings):
    settings.EMAIL_TIMEOUT = 1
    smtp_server.answer_data(Stall(3))

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.UNKNOWN
    assert "timed out" in result.error
    assert len(smtp_server.received) == 1


def test_it_opens_a_new_connection_when_the_server_closed_the_idle_one():
    with SmtpTestServer(idle_timeout=0.3) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        first = provider.send(outreach_message("anna@company.test"), idempotency_key="1")
        time.sleep(0.8)
        second = provider.send(outreach_message("ben@company.test"), idempotency_key="2")

        assert [first.status, second.status] == [Status.SENT, Status.SENT]
        assert [message.rcpt_tos for message in server.messages] == [["anna@company.test"], ["ben@company.test"]]
        assert len(server.sessions) == 2


def test_it_logs_in_with_the_password_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SMTP_PASSWORD_SALES", "s3cret")

    with SmtpTestServer(auth=("sales", "s3cret")) as server:
        mailbox = smtp_mailbox(server, smtp_username="sales", smtp_password_env="CAM_SECRET_SMTP_PASSWORD_SALES")
        with SmtpProvider(mailbox) as provider:
            result = provider.send(outreach_message(), idempotency_key="1")

        assert result.status == Status.SENT
        assert server.logins == ["sales"]
        assert len(server.messages) == 1


def test_it_retries_when_the_login_is_refused_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SMTP_PASSWORD_SALES", "an-old-password")

    with SmtpTestServer(auth=("sales", "s3cret")) as server:
        mailbox = smtp_mailbox(server, smtp_username="sales", smtp_password_env="CAM_SECRET_SMTP_PASSWORD_SALES")
        with SmtpProvider(mailbox) as provider:
            result = provider.send(outreach_message(), idempotency_key="1")

        assert result.status == Status.RETRY
        assert "refused the login as 'sales': 535" in result.error
        assert "CAM_SECRET_SMTP_PASSWORD_SALES" in result.error
        assert server.received == []


def test_it_retries_every_send_when_the_password_variable_is_missing(smtp_server, monkeypatch):
    monkeypatch.delenv("CAM_SECRET_SMTP_PASSWORD_NOWHERE", raising=False)
    mailbox = smtp_mailbox(smtp_server, smtp_username="sales", smtp_password_env="CAM_SECRET_SMTP_PASSWORD_NOWHERE")

    with SmtpProvider(mailbox) as provider:
        results = [provider.send(outreach_message(), idempotency_key=str(n)) for n in range(2)]

    assert [result.status for result in results] == [Status.RETRY, Status.RETRY]
    assert "The environment variable CAM_SECRET_SMTP_PASSWORD_NOWHERE for the SMTP password" in results[0].error
    assert smtp_server.sessions == []


def test_it_never_falls_back_to_plain_text_when_starttls_is_not_offered(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server, smtp_security=Security.STARTTLS)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.RETRY
    assert "STARTTLS extension not supported by server" in result.error
    assert smtp_server.received == []


def test_it_never_falls_back_to_plain_text_when_ssl_meets_a_plain_server(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server, smtp_security=Security.SSL)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.RETRY
    assert "SSL" in result.error
    assert smtp_server.received == []


@pytest.mark.parametrize(("security", "use_tls", "use_ssl", "port"), [
    (Security.NONE, False, False, 25),
    (Security.STARTTLS, True, False, 587),
    (Security.SSL, False, True, 465),
])
def test_it_builds_djangos_smtp_backend_from_the_mailbox(settings, monkeypatch, security, use_tls, use_ssl, port):
    settings.EMAIL_TIMEOUT = 17
    monkeypatch.setenv("CAM_SECRET_SMTP_PASSWORD_SALES", "s3cret")
    mailbox = MailboxFactory.build(provider=Mailbox.Provider.SMTP, smtp_host="mail.outreach.test", smtp_port=None,
                                   smtp_security=security, smtp_username="sales",
                                   smtp_password_env="CAM_SECRET_SMTP_PASSWORD_SALES")

    provider = SmtpProvider(mailbox)
    provider.open()
    backend = provider.backend

    assert (backend.host, backend.port, backend.username, backend.password) == (
        "mail.outreach.test", port, "sales", "s3cret")
    assert (backend.use_tls, backend.use_ssl, backend.timeout, backend.fail_silently) == (
        use_tls, use_ssl, 17, False)
    assert backend.connection is None  # nothing is opened before the first send


# --- SMTP: sending once the sender is ready ---------------------------------------------------------


class Asked:
    """A sender's ``ready``: says ``answer`` (or raises it), and records what the server had by then."""

    def __init__(self, server: SmtpTestServer, answer: bool | Exception = True, *, wait_for_rcpt: str = "") -> None:
        self.server, self.answer, self.wait_for_rcpt = server, answer, wait_for_rcpt
        self.calls = 0
        self.received_then: list | None = None

    def __call__(self) -> bool:
        self.calls += 1
        deadline = time.monotonic() + 5
        while self.wait_for_rcpt and self.wait_for_rcpt not in self.server.rcpts and time.monotonic() < deadline:
            time.sleep(0.01)  # the envelope goes out meanwhile, in the provider's thread
        self.received_then = list(self.server.received)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_send_when_ready_asks_while_the_server_holds_the_envelope_and_sends_the_data_after(smtp_server):
    ready = Asked(smtp_server, wait_for_rcpt="anna@company.test")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)

    assert result is not None and result.status == Status.SENT
    assert ready.calls == 1
    assert "anna@company.test" in smtp_server.rcpts  # the envelope had gone out while the sender made ready …
    assert ready.received_then == []  # … and nothing had been delivered
    assert [message.rcpt_tos for message in smtp_server.messages] == [["anna@company.test"]]


def test_send_when_told_no_delivers_nothing_and_the_next_message_goes_on_a_new_connection(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        told_no = Asked(smtp_server, False, wait_for_rcpt="anna@company.test")
        refused = provider.send_when(outreach_message("anna@company.test", message_id="<1@outreach.test>"),
                                     idempotency_key="1", ready=told_no)
        following = provider.send_when(outreach_message("ben@company.test", message_id="<2@outreach.test>"),
                                       idempotency_key="2", ready=Asked(smtp_server))

    assert refused is None
    assert following is not None and following.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.received] == [["ben@company.test"]]  # never Anna's
    assert len(smtp_server.sessions) == 2  # the connection was dropped in the middle of Anna's envelope


def test_send_when_ready_raises_delivers_nothing_and_the_error_goes_to_the_sender(smtp_server):
    class DatabaseGone(Exception):
        pass

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        with pytest.raises(DatabaseGone):
            provider.send_when(outreach_message("anna@company.test"), idempotency_key="1",
                               ready=Asked(smtp_server, DatabaseGone(), wait_for_rcpt="anna@company.test"))
        following = provider.send_when(outreach_message("ben@company.test"), idempotency_key="2",
                                       ready=Asked(smtp_server))

    assert following is not None and following.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.received] == [["ben@company.test"]]


@pytest.mark.parametrize(("script", "status", "words"), [
    (lambda server: server.answer_rcpt("anna@company.test", "550 5.1.1 No such user"), Status.FAILED, "550 5.1.1"),
    (lambda server: server.answer_rcpt("anna@company.test", "451 4.7.1 Greylisted"), Status.RETRY, "451 4.7.1"),
    (lambda server: server.answer_mail("sender@outreach.test", "553 5.7.1 Not yours"), Status.FAILED, "553 5.7.1"),
    (lambda server: server.answer_data("554 5.7.1 Spam"), Status.FAILED, "554 5.7.1"),
    (lambda server: server.answer_data("451 4.3.0 Try again"), Status.RETRY, "451 4.3.0"),
    (lambda server: server.answer_data(DROP), Status.UNKNOWN, "may have been delivered"),
], ids=["recipient refused", "recipient greylisted", "sender refused", "data refused", "data deferred", "dropped"])
def test_send_when_reads_the_servers_answers_as_send_does(smtp_server, script, status, words):
    script(smtp_server)
    ready = Asked(smtp_server)

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)
        after = provider.send(outreach_message("ben@company.test"), idempotency_key="2")

    assert result is not None and (result.status, ready.calls) == (status, 1)
    assert words in result.error
    assert after.status != Status.UNKNOWN or status == Status.UNKNOWN  # the next message is not harmed


@pytest.mark.parametrize("work", ["fine", "raises"])
def test_send_when_does_the_senders_work_while_the_server_takes_the_message_in(smtp_server, work):
    calls = []

    def meanwhile():
        calls.append(len(smtp_server.rcpts))
        if work == "raises":
            raise RuntimeError("building the next message failed")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        told_no = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1",
                                     ready=Asked(smtp_server, False), meanwhile=meanwhile)
        result = provider.send_when(outreach_message("ben@company.test"), idempotency_key="2",
                                    ready=Asked(smtp_server), meanwhile=meanwhile)

    assert told_no is None
    assert result is not None and result.status == Status.SENT  # whatever the work did
    assert calls == [2]  # once, for the message that went, after its envelope
    assert [message.rcpt_tos for message in smtp_server.received] == [["ben@company.test"]]


def test_a_message_prepared_ahead_goes_out_as_prepared_and_only_that_message(smtp_server, monkeypatch):
    from cam.outreach.providers import smtp as smtp_module

    made = []
    real_message_bytes = smtp_module.message_bytes
    monkeypatch.setattr(smtp_module, "message_bytes",
                        lambda message: made.append(message) or real_message_bytes(message))
    anna, ben = outreach_message("anna@company.test"), outreach_message("ben@company.test", message_id="<2@x.test>")
    del anna.extra_headers["Message-ID"]  # prepare() gives it its id, as send_when() would
    unbuildable = outreach_message("anna@company@test", message_id="<3@x.test>")

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        provider.prepare(anna)
        first = provider.send_when(anna, idempotency_key="1", ready=Asked(smtp_server))
        provider.prepare(anna)  # prepared for a message that is not the one sent next: not used for it
        second = provider.send_when(ben, idempotency_key="2", ready=Asked(smtp_server))
        provider.prepare(unbuildable)  # never raises: the error is the send's
        third = provider.send_when(unbuildable, idempotency_key="3", ready=Asked(smtp_server))

    assert made.count(anna) == 2 and made.count(ben) == 1  # Anna's bytes were made once for her send
    assert first is not None and first.status == Status.SENT
    assert second is not None and second.status == Status.SENT
    assert third is not None and third.status == Status.FAILED and "could not be built" in third.error
    anna_data, ben_data = (message.data for message in smtp_server.messages)
    assert f"Message-ID: {first.provider_message_id}".encode() in anna_data
    assert b"To: anna@company.test" in anna_data and b"To: ben@company.test" in ben_data


@pytest.mark.parametrize("answer", [True, False])
def test_send_when_asks_once_even_when_nothing_reaches_the_server(smtp_server, answer):
    unreachable_mailbox = MailboxFactory.build(provider=Mailbox.Provider.SMTP, smtp_host="127.0.0.1",
                                               smtp_port=free_port(), smtp_security=Security.NONE)
    asked = []

    with SmtpProvider(unreachable_mailbox) as provider:
        unreachable = provider.send_when(outreach_message(), idempotency_key="1",
                                         ready=lambda: asked.append(1) or answer)
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        unbuildable = provider.send_when(outreach_message("anna@company@test"), idempotency_key="2",
                                         ready=lambda: asked.append(2) or answer)

    assert asked == [1, 2]
    if answer:
        assert unreachable is not None and (unreachable.status, unreachable.attempted) == (Status.RETRY, False)
        assert unbuildable is not None and (unbuildable.status, unbuildable.attempted) == (Status.FAILED, False)
    else:
        assert unreachable is None and unbuildable is None
    assert smtp_server.received == []


class Started(Asked):
    """A sender's ``ready`` whose work can be started first (``start()``): the provider then sends the
    envelope on its own thread while that work runs, and asks for the answer before any data."""

    def __init__(self, server: SmtpTestServer, answer: bool | Exception = True, *, can_start: bool = True) -> None:
        super().__init__(server, answer)
        self.can_start = can_start
        self.order: list[str] = []
        self.rcpts_when_started: list[str] | None = None

    def start(self) -> bool:
        self.order.append("start")
        self.rcpts_when_started = list(self.server.rcpts)
        return self.can_start

    def __call__(self) -> bool:
        self.order.append("ask")
        return super().__call__()


def test_a_started_ready_is_asked_after_the_envelope_on_the_same_thread_and_before_the_data(smtp_server):
    ready = Started(smtp_server)

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)
        threads = provider._envelopes

    assert result is not None and result.status == Status.SENT
    assert ready.order == ["start", "ask"]
    assert ready.rcpts_when_started == []  # started before the envelope …
    assert "anna@company.test" in smtp_server.rcpts  # … asked once it had gone out …
    assert ready.received_then == []  # … and before anything was delivered
    assert threads is None  # no thread of the provider's was needed
    assert [message.rcpt_tos for message in smtp_server.messages] == [["anna@company.test"]]


def test_a_started_ready_that_says_no_delivers_nothing(smtp_server):
    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        refused = provider.send_when(outreach_message("anna@company.test", message_id="<1@outreach.test>"),
                                     idempotency_key="1", ready=Started(smtp_server, False))
        following = provider.send_when(outreach_message("ben@company.test", message_id="<2@outreach.test>"),
                                       idempotency_key="2", ready=Started(smtp_server))

    assert refused is None
    assert following is not None and following.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.received] == [["ben@company.test"]]
    assert len(smtp_server.sessions) == 2  # dropped after Anna's envelope, before any of her data


def test_a_started_ready_that_raises_delivers_nothing_and_the_error_goes_to_the_sender(smtp_server):
    class DatabaseGone(Exception):
        pass

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        with pytest.raises(DatabaseGone):
            provider.send_when(outreach_message("anna@company.test"), idempotency_key="1",
                               ready=Started(smtp_server, DatabaseGone()))
        following = provider.send_when(outreach_message("ben@company.test"), idempotency_key="2",
                                       ready=Started(smtp_server))

    assert following is not None and following.status == Status.SENT
    assert [message.rcpt_tos for message in smtp_server.received] == [["ben@company.test"]]


@pytest.mark.parametrize(("refusal", "status"), [("550 5.1.1 No such user", Status.FAILED),
                                                 ("451 4.7.1 Greylisted", Status.RETRY)])
def test_a_started_ready_is_asked_once_when_the_server_refuses_the_envelope(smtp_server, refusal, status):
    smtp_server.answer_rcpt("anna@company.test", refusal)
    ready = Started(smtp_server)

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)

    assert result is not None and result.status == status and refusal.split()[1] in result.error
    assert ready.order == ["start", "ask"]  # its work was finished all the same
    assert smtp_server.received == []


def test_a_ready_that_cannot_start_is_asked_while_the_envelope_goes_out_in_the_providers_thread(smtp_server):
    ready = Started(smtp_server, can_start=False)

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)
        threads = provider._envelopes

    assert result is not None and result.status == Status.SENT
    assert ready.order == ["start", "ask"] and threads is not None
    assert [message.rcpt_tos for message in smtp_server.messages] == [["anna@company.test"]]


def test_send_when_on_a_provider_without_preliminaries_asks_first():
    stream, order = io.StringIO(), []

    with ConsoleProvider(MailboxFactory.build(), stream=stream) as provider:
        told_no = provider.send_when(outreach_message(message_id="<1@outreach.test>"), idempotency_key="1",
                                     ready=lambda: order.append("no") or False)
        told_yes = provider.send_when(outreach_message(message_id="<2@outreach.test>"), idempotency_key="2",
                                      ready=lambda: order.append("yes") or True)

    assert told_no is None and told_yes is not None and told_yes.status == Status.SENT
    assert order == ["no", "yes"]
    assert "<1@outreach.test>" not in stream.getvalue() and "<2@outreach.test>" in stream.getvalue()


# --- Resend -----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def resend_api(http_server, settings, monkeypatch):
    """The local HTTP server standing in for Resend's API, with a key in the default variable."""
    settings.AICMO_CAM_RESEND_API_URL = http_server.url("/")
    settings.AICMO_CAM_RESEND_TIMEOUT_SECONDS = 5
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")
    return http_server


def resend_provider(clock: FakeClock, *, rate: int = 100) -> ResendProvider:
    mailbox = MailboxFactory.build(provider=Mailbox.Provider.RESEND)
    limit = SharedRateLimit(rate, store=InMemoryStateStore(), where="this test", clock=clock, sleep=clock.sleep)
    return ResendProvider(mailbox, limiter=limit, clock=clock)


def test_it_posts_to_resend_with_the_idempotency_key_and_the_api_key(resend_api, clock):
    resend_api.reply("/emails", Reply(200, {"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}))

    with resend_provider(clock) as provider:
        result = provider.send(outreach_message(), idempotency_key="outbound-42")

    assert result == SendResult(Status.SENT, provider_message_id="4ef9a417-02e9-4d39-ad75-9611e0fcc33c")
    (request,) = resend_api.requests_to("/emails")
    assert request.method == "POST"
    assert request.headers["idempotency-key"] == "outbound-42"
    assert request.headers["authorization"] == "Bearer re_test_123"
    body = request.json()
    assert body["to"] == ["anna@company.test"]
    assert body["from"] == "Alex Sender <sender@outreach.test>"
    assert body["subject"] == "Re: Quick question"
    assert body["text"] == "Hi Anna,\n\nJust following up on my last note.\n"
    assert body["html"] == "<p>Hi Anna,</p><p>Just following up on my last note.</p>"
    assert body["tags"] == RESEND_TAGS
    assert body["headers"] == {
        "Message-ID": "<step2.42@outreach.test>",
        "In-Reply-To": "<step1.42@outreach.test>",
        "References": "<step1.42@outreach.test>",
        "List-Unsubscribe": UNSUBSCRIBE,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }  # no X-Tags / X-Metadata for the recipient to read, and the key stays out of the email


def test_resend_keeps_its_own_return_path_whatever_the_mailbox_asks(resend_api, clock):
    resend_api.reply("/emails", Reply(200, {"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}))
    message = outreach_message()
    message.return_path = "sender+b-1-0000000000000000@outreach.test"  # as build_message sets it for VERP

    with resend_provider(clock) as provider:
        assert provider.send(message, idempotency_key="outbound-42").status == Status.SENT

    body = resend_api.requests_to("/emails")[0].json()
    assert body["from"] == "Alex Sender <sender@outreach.test>"
    assert "sender+b-" not in str(body)


def test_it_retries_a_server_error_with_the_same_key(resend_api, clock):
    resend_api.reply("/emails", Reply(500, {"statusCode": 500, "name": "internal_server_error",
                                            "message": "An unexpected error occurred."}),
                     Reply(200, {"id": "re-id-1"}))

    with resend_provider(clock) as provider:
        first = provider.send(outreach_message(), idempotency_key="outbound-42")
        second = provider.send(outreach_message(), idempotency_key="outbound-42")

    assert first.status == Status.RETRY
    assert "500 internal_server_error: An unexpected error occurred." in first.error
    assert second == SendResult(Status.SENT, provider_message_id="re-id-1")
    assert [r.headers["idempotency-key"] for r in resend_api.requests_to("/emails")] == ["outbound-42"] * 2


def test_it_honours_retry_after_on_429_for_the_rest_of_the_batch(resend_api, clock):
    resend_api.reply("/emails", Reply(429, {"statusCode": 429, "name": "rate_limit_exceeded",
                                            "message": "Too many requests."}, headers={"retry-after": "2"}),
                     Reply(200, {"id": "re-id-2"}))

    with resend_provider(clock) as provider:
        limited = provider.send(outreach_message(), idempotency_key="1")
        clock.now += 0.5
        waiting = provider.send(outreach_message(), idempotency_key="2")
        clock.now += 1.5
        after = provider.send(outreach_message(), idempotency_key="2")

    assert (limited.status, limited.retry_after) == (Status.RETRY, 2)
    assert "429 rate_limit_exceeded: Too many requests." in limited.error
    assert (waiting.status, waiting.retry_after) == (Status.RETRY, 1.5)
    assert after == SendResult(Status.SENT, provider_message_id="re-id-2")
    assert [r.headers["idempotency-key"] for r in resend_api.requests_to("/emails")] == ["1", "2"]


@pytest.mark.parametrize(("status", "name", "text"), [
    (422, "validation_error", "The `to` field must be a valid email address."),
    (400, "invalid_idempotency_key", "The key must be between 1-256 chars."),
    (403, "invalid_from_address", "The outreach.test domain is not verified."),
])
def test_it_fails_what_resend_refuses_with_resends_message(resend_api, clock, status, name, text):
    resend_api.reply("/emails", Reply(status, {"statusCode": status, "name": name, "message": text}))

    with resend_provider(clock) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.FAILED
    assert result.error == f"Resend answered {status} {name}: {text}"


def test_it_retries_the_batch_when_resend_refuses_the_api_key(resend_api, clock):
    resend_api.reply("/emails", Reply(403, {"statusCode": 403, "name": "invalid_api_key",
                                            "message": "API key is invalid"}))

    with resend_provider(clock) as provider:
        results = [provider.send(outreach_message(), idempotency_key=str(n)) for n in range(2)]

    assert [result.status for result in results] == [Status.RETRY, Status.RETRY]
    assert results[0].error == ("Resend answered 403 invalid_api_key: API key is invalid. "
                                "Check the API key in CAM_SECRET_RESEND_API_KEY.")
    assert results[1].error == results[0].error
    assert len(resend_api.requests) == 1


@pytest.mark.parametrize(("name", "status"), [
    ("concurrent_idempotent_requests", Status.RETRY),
    ("invalid_idempotent_request", Status.UNKNOWN),
])
def test_it_tells_a_key_in_use_from_a_key_used_for_other_content(resend_api, clock, name, status):
    resend_api.reply("/emails", Reply(409, {"statusCode": 409, "name": name, "message": "Idempotency conflict."}))

    with resend_provider(clock) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == status


def test_it_retries_after_a_timeout_with_the_same_key(resend_api, clock, settings):
    settings.AICMO_CAM_RESEND_TIMEOUT_SECONDS = 0.3
    resend_api.reply("/emails", Reply(200, {"id": "late"}, delay=2), Reply(200, {"id": "re-id-3"}))

    with resend_provider(clock) as provider:
        timed_out = provider.send(outreach_message(), idempotency_key="outbound-7")
        retried = provider.send(outreach_message(), idempotency_key="outbound-7")

    assert timed_out.status == Status.RETRY
    assert "Resend could not be reached: " in timed_out.error
    assert "timed out" in timed_out.error
    assert retried == SendResult(Status.SENT, provider_message_id="re-id-3")
    assert [r.headers["idempotency-key"] for r in resend_api.requests_to("/emails")] == ["outbound-7"] * 2


def test_it_fails_a_message_anymail_cannot_build_without_a_request(resend_api, clock):
    with resend_provider(clock) as provider:
        result = provider.send(outreach_message("anna@company@test"), idempotency_key="1")

    assert result.status == Status.FAILED
    assert result.error == ("The message cannot be sent through Resend: "
                            "Invalid email address '' in `to` parsed from 'anna@company@test'")
    assert resend_api.requests == []


def test_it_retries_when_resend_cannot_be_reached(settings, monkeypatch, clock):
    settings.AICMO_CAM_RESEND_API_URL = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")

    with resend_provider(clock) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.RETRY
    assert "Resend could not be reached: ConnectionError" in result.error


def test_it_retries_every_send_when_the_api_key_variable_is_missing(resend_api, clock, monkeypatch):
    monkeypatch.delenv("CAM_SECRET_RESEND_API_KEY")

    with resend_provider(clock) as provider:
        results = [provider.send(outreach_message(), idempotency_key=str(n)) for n in range(2)]

    assert [result.status for result in results] == [Status.RETRY, Status.RETRY]
    assert "The environment variable CAM_SECRET_RESEND_API_KEY for the Resend API key" in results[0].error
    assert resend_api.requests == []


def test_it_keeps_requests_within_the_configured_rate(resend_api, clock):
    request_times: list[float] = []

    def accept(request):
        request_times.append(clock.now)
        return Reply(200, {"id": f"re-{len(request_times)}"})

    resend_api.reply("/emails", accept)

    with resend_provider(clock, rate=2) as provider:
        results = [provider.send(outreach_message(), idempotency_key=str(n)) for n in range(5)]

    assert [result.status for result in results] == [Status.SENT] * 5
    # Evenly spaced, 1.1 s / 2 apart: two a second at most, with room for the network's jitter.
    assert request_times == pytest.approx([0.0, 0.55, 1.1, 1.65, 2.2])
    assert clock.sleeps == pytest.approx([0.55] * 4)


def test_it_shares_one_limit_per_process_at_the_configured_rate(settings):
    settings.AICMO_CAM_RESEND_RATE_PER_SECOND = 3
    first = ResendProvider(MailboxFactory.build(provider=Mailbox.Provider.RESEND))
    second = ResendProvider(MailboxFactory.build(provider=Mailbox.Provider.RESEND))

    assert first.limiter is second.limiter
    assert first.limiter.rate == 3
