"""No mail server or API can stall sending: each message and each request has an overall deadline."""

from __future__ import annotations

import threading
import time

import pytest
from pyrate_limiter import InMemoryStateStore

from cam.deadlines import cancel_interruptible
from cam.models import Mailbox, OutboundEmail
from cam.models.mail import Security
from cam.outreach.providers.base import SendResult
from cam.outreach.providers.resend import ResendProvider
from cam.outreach.providers.resend_rate import SharedRateLimit
from cam.outreach.providers.smtp import SmtpProvider
from tests.factories import MailboxFactory
from tests.outreach.test_providers import outreach_message
from tests.servers.drip import (
    DripServer,
    drip,
    dripping_tls_handshake,
    http_dripping_response,
    silent,
    smtp_dripping_after_data,
    smtp_dripping_starttls,
)
from tests.servers.http import Reply
from tests.servers.smtp import Stall

Status = OutboundEmail.Status


@pytest.fixture
def short_deadlines(settings):
    settings.AICMO_CAM_SMTP_DEADLINE_SECONDS = 1
    settings.AICMO_CAM_RESEND_DEADLINE_SECONDS = 1
    return settings


def smtp_mailbox(server, security: str = Security.NONE) -> Mailbox:
    return MailboxFactory.build(provider=Mailbox.Provider.SMTP, smtp_host=server.host, smtp_port=server.port,
                                smtp_security=security)


def seconds_since(started: float) -> float:
    return time.monotonic() - started


# --- SMTP -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("conversation", "security"), [
    (drip(b"220"), Security.NONE),  # a greeting one byte every 0.2 s: no read ever times out
    (silent, Security.NONE),  # accepts and never speaks (EMAIL_TIMEOUT is 30 s)
    (dripping_tls_handshake, Security.SSL),  # a TLS handshake one byte every 0.2 s
    (smtp_dripping_starttls, Security.STARTTLS),  # the same after STARTTLS, on the socket the greeting came on
], ids=["dripping-greeting", "silent", "dripping-tls-handshake", "dripping-starttls-handshake"])
def test_it_retries_uncounted_when_the_server_does_not_finish_connecting(short_deadlines, conversation, security):
    with DripServer(conversation) as server:
        started = time.monotonic()
        with SmtpProvider(smtp_mailbox(server, security)) as provider:
            result = provider.send(outreach_message(), idempotency_key="1")

    assert seconds_since(started) < 2.5
    assert result == SendResult(Status.RETRY, attempted=False, halt_batch=True, error=(
        f"Could not connect to the SMTP server {server.host}:{server.port}: DeadlineExceeded: "
        f"Gave up talking to the SMTP server after 1 s."))


def test_it_reports_unknown_when_the_server_drips_its_answer_to_the_data(short_deadlines):
    with DripServer(smtp_dripping_after_data) as server:
        started = time.monotonic()
        with SmtpProvider(smtp_mailbox(server)) as provider:
            result = provider.send(outreach_message(), idempotency_key="1")

    assert seconds_since(started) < 2.5
    assert result.status == Status.UNKNOWN
    assert result.attempted
    assert result.provider_message_id == "<step2.42@outreach.test>"
    assert "(DeadlineExceeded: Gave up talking to the SMTP server after 1 s)" in result.error
    assert "may have been delivered" in result.error


def test_it_gives_each_message_of_a_batch_its_own_deadline(short_deadlines, smtp_server):
    # Together the two messages take longer than one deadline; each one alone does not.
    smtp_server.answer_data(Stall(0.6))

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        results = [provider.send(outreach_message(f"lead{n}@company.test"), idempotency_key=str(n)) for n in (1, 2)]

    assert [result.status for result in results] == [Status.SENT, Status.SENT]
    assert len(smtp_server.sessions) == 1


def test_it_holds_a_reused_connection_to_the_next_messages_deadline(short_deadlines, smtp_server):
    smtp_server.answer_data("250 OK", Stall(5))  # EMAIL_TIMEOUT (30 s) alone would wait for it

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        first = provider.send(outreach_message("anna@company.test"), idempotency_key="1")
        started = time.monotonic()
        second = provider.send(outreach_message("ben@company.test"), idempotency_key="2")

    assert seconds_since(started) < 2.5
    assert (first.status, second.status) == (Status.SENT, Status.UNKNOWN)
    assert len(smtp_server.sessions) == 1


def test_it_finishes_a_message_when_the_worker_is_told_to_stop(short_deadlines, smtp_server):
    # Cut off after DATA the message's outcome would be unknown: the sender stops between messages.
    smtp_server.answer_data(Stall(0.5))
    threading.Timer(0.2, cancel_interruptible, args=("the worker is stopping",)).start()

    with SmtpProvider(smtp_mailbox(smtp_server)) as provider:
        result = provider.send(outreach_message(), idempotency_key="1")

    assert result.status == Status.SENT
    assert len(smtp_server.messages) == 1


# --- Resend -----------------------------------------------------------------------------------------


@pytest.fixture
def resend_key(monkeypatch):
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")


def resend_provider() -> ResendProvider:
    return ResendProvider(MailboxFactory.build(provider=Mailbox.Provider.RESEND),
                          limiter=SharedRateLimit(100, store=InMemoryStateStore(), where="this test"))


def test_it_retries_when_resend_drips_its_answer(short_deadlines, resend_key):
    with DripServer(http_dripping_response) as server:
        short_deadlines.AICMO_CAM_RESEND_API_URL = f"http://{server.host}:{server.port}"
        started = time.monotonic()
        with resend_provider() as provider:
            result = provider.send(outreach_message(), idempotency_key="outbound-7")

    assert seconds_since(started) < 2.5
    # The request went out: it counts, and is retried under the same idempotency key.
    assert result == SendResult(Status.RETRY, attempted=True, error=(
        "Resend could not be reached: DeadlineExceeded: Gave up talking to Resend after 1 s"))


def test_it_holds_a_kept_alive_connection_to_the_next_requests_deadline(short_deadlines, resend_key, http_server):
    short_deadlines.AICMO_CAM_RESEND_API_URL = http_server.url("/")
    short_deadlines.AICMO_CAM_RESEND_TIMEOUT_SECONDS = 30
    http_server.reply("/emails", Reply(200, {"id": "re-1"}), Reply(200, {"id": "late"}, delay=5))

    with resend_provider() as provider:
        first = provider.send(outreach_message(), idempotency_key="1")
        started = time.monotonic()
        second = provider.send(outreach_message(), idempotency_key="2")

    assert seconds_since(started) < 2.5
    assert first == SendResult(Status.SENT, provider_message_id="re-1")
    assert second.status == Status.RETRY
    assert "Gave up talking to Resend after 1 s" in second.error
