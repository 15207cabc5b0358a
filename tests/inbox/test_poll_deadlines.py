"""No IMAP server can stall the poll: servers that drip their answers, a step budget, a worker told to stop."""

from __future__ import annotations

import threading
import time

import pytest

from cam.deadlines import cancel_interruptible
from cam.inbox.polling import inbox_poll, inboxes_poll
from cam.models import InboundEmail, Mailbox
from tests.factories import MailboxFactory
from tests.inbox.test_polling import PASSWORD_ENV, imap_password, mailbox_on, message  # noqa: F401 (a fixture)
from tests.servers.drip import (
    DripServer,
    drip,
    dripping_tls_handshake,
    imap_dripping_answer_to,
    imap_dripping_starttls,
    silent,
)


@pytest.fixture
def short_deadlines(settings):
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 1
    settings.AICMO_CAM_IMAP_POLL_BUDGET_SECONDS = 10
    return settings


@pytest.fixture
def dripping_greeting():
    with DripServer(drip(b"* OK ")) as server:
        yield server


def mailbox_at(server: DripServer, **fields) -> Mailbox:
    return MailboxFactory(**{"imap_host": server.host, "imap_port": server.port, "imap_security": "none",
                             "imap_username": "lead-replies", "imap_password_env": PASSWORD_ENV, **fields})


def stored(mailbox: Mailbox) -> int:
    return InboundEmail.objects.filter(mailbox=mailbox).count()


def seconds_since(started: float) -> float:
    return time.monotonic() - started


@pytest.mark.django_db
@pytest.mark.parametrize(("conversation", "security"), [
    (drip(b"* OK "), "none"),  # a greeting one byte every 0.2 s: no read ever times out
    (silent, "none"),  # accepts and never speaks (the per-read timeout is 30 s)
    (dripping_tls_handshake, "ssl"),  # a TLS handshake one byte every 0.2 s
    (imap_dripping_starttls, "starttls"),  # the same after STARTTLS, on the socket the greeting came on
], ids=["dripping-greeting", "silent", "dripping-tls-handshake", "dripping-starttls-handshake"])
def test_it_gives_up_on_a_server_that_does_not_finish_connecting(short_deadlines, conversation, security):
    with DripServer(conversation) as server:
        mailbox = mailbox_at(server, imap_security=security)
        started = time.monotonic()

        assert inbox_poll(mailbox=mailbox)["failed"] == 1

    assert seconds_since(started) < 2.5
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == (f"The IMAP server {server.host}:{server.port} did not finish connecting "
                                       f"within 1 s.")
    assert mailbox.last_polled_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "doing"), [
    (b"LOGIN", "logging in"),
    (b"EXAMINE", "opening folder 'INBOX'"),
])
def test_it_gives_up_on_a_server_that_drips_its_answer_to_a_command(short_deadlines, command, doing):
    with DripServer(imap_dripping_answer_to(command)) as server:
        mailbox = mailbox_at(server)
        started = time.monotonic()

        assert inbox_poll(mailbox=mailbox)["failed"] == 1

    assert seconds_since(started) < 2.5
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == f"The IMAP server {server.host}:{server.port} did not finish {doing} within 1 s."


@pytest.mark.django_db(transaction=True)
def test_it_stores_the_other_mailboxes_mail_while_one_server_drips(imap_server, settings, dripping_greeting):
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 2
    settings.AICMO_CAM_IMAP_POLL_BUDGET_SECONDS = 10
    dripping = mailbox_at(dripping_greeting)
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    imap_server.append(user, message(2))
    good = mailbox_on(imap_server, user)
    started = time.monotonic()

    counts = inboxes_poll()

    assert seconds_since(started) < 3.5
    dripping.refresh_from_db()
    good.refresh_from_db()
    assert counts == {"mailboxes": 2, "fetched": 2, "stored": 2, "skipped_duplicates": 0, "failed": 1,
                      "problems": [f"mailbox {dripping.name}: {dripping.last_poll_error}"]}
    assert dripping.last_poll_error.endswith("did not finish connecting within 2 s.")
    assert stored(good) == 2
    assert good.last_poll_error == ""
    # Polled side by side: the good mailbox did not wait for the dripping one to give up.
    assert (good.last_polled_at - dripping.last_polled_at).total_seconds() < -1


@pytest.mark.django_db(transaction=True)
def test_it_ends_the_step_when_its_budget_runs_out(settings, dripping_greeting):
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 60
    mailbox = mailbox_at(dripping_greeting)
    started = time.monotonic()

    counts = inboxes_poll(budget_seconds=1)

    assert seconds_since(started) < 2.5
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == (f"Gave up on the IMAP server {dripping_greeting.host}:{dripping_greeting.port} "
                                       f"while connecting: the poll step ran out of its 1 s budget.")
    assert counts["problems"] == [f"mailbox {mailbox.name}: {mailbox.last_poll_error}"]
    assert counts["failed"] == 1


@pytest.mark.django_db
def test_it_leaves_the_mailboxes_it_had_no_time_for_to_the_next_poll(settings, dripping_greeting):
    # Inside the test's transaction mailboxes are polled one after the other.
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 60
    first, second = mailbox_at(dripping_greeting), mailbox_at(dripping_greeting)
    started = time.monotonic()

    counts = inboxes_poll(budget_seconds=1)

    assert seconds_since(started) < 2.5
    first.refresh_from_db()
    second.refresh_from_db()
    assert counts["problems"] == [f"mailbox {first.name}: {first.last_poll_error}",
                                  f"mailbox {second.name}: not polled: the poll step ran out of its 1 s budget"]
    assert (counts["mailboxes"], counts["failed"]) == (1, 1)
    assert second.last_polled_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["cancel_interruptible", "stop_event"])
def test_it_stops_mid_poll_when_the_worker_is_told_to(settings, dripping_greeting, how):
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 60
    settings.AICMO_CAM_IMAP_POLL_BUDGET_SECONDS = 60
    mailbox = mailbox_at(dripping_greeting)
    stop = threading.Event()

    def tell_it_to_stop() -> None:
        if how == "stop_event":
            stop.set()
        else:  # what cam_worker's SIGTERM handler does
            cancel_interruptible("the worker is stopping")

    threading.Timer(0.5, tell_it_to_stop).start()
    started = time.monotonic()

    counts = inboxes_poll(stop=stop)

    assert seconds_since(started) < 1.5
    reason = "the worker was told to stop" if how == "stop_event" else "the worker is stopping"
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == (f"Gave up on the IMAP server {dripping_greeting.host}:{dripping_greeting.port} "
                                       f"while connecting: {reason}.")
    assert counts["problems"] == [f"mailbox {mailbox.name}: {mailbox.last_poll_error}"]


@pytest.mark.django_db
def test_it_stops_a_single_mailbox_poll_when_interruptible_conversations_are_cancelled(settings, dripping_greeting):
    settings.AICMO_CAM_IMAP_DEADLINE_SECONDS = 60
    mailbox = mailbox_at(dripping_greeting)
    threading.Timer(0.5, cancel_interruptible, args=("the worker is stopping",)).start()
    started = time.monotonic()

    assert inbox_poll(mailbox=mailbox)["failed"] == 1

    assert seconds_since(started) < 1.5
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error.endswith("while connecting: the worker is stopping.")
