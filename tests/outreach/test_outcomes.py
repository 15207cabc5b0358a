"""Never lost: each email's outcome is committed right after its provider call, attempts are honest,
and a batch stops where it must (a crash, a halt, a dead database, a lost lease, the end of its time)."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.utils import OperationalError
from django.utils import timezone

from cam.budget import Budget
from cam.dashboard import get_dashboard
from cam.locks import lease_acquire
from cam.models import Lead, Lease, Mailbox, OutboundEmail
from cam.outreach import sending
from cam.outreach.planning import outreach_plan
from cam.outreach.providers.smtp import SmtpProvider
from cam.outreach.sending import mailbox_send_due, outbound_recover_stuck, outbound_send_batch, outreach_send
from tests.factories import IN_FLIGHT, MailboxFactory, email_states, put_in_flight
from tests.outreach.test_sending import due_lead, open_campaign, smtp_mailbox
from tests.servers.http import Reply
from tests.servers.smtp import Call, Stall, free_port

Status = OutboundEmail.Status


class Killed(BaseException):
    """What ``kill -9`` does to a sender, as far as the database can tell: it stops, mid-batch, and
    writes nothing more."""


def plan(owner, count: int) -> list[Lead]:
    leads = [due_lead(owner, email=f"lead{n}@company{n}.example.com") for n in range(count)]
    outreach_plan()
    return leads


def statuses() -> list[str]:
    return email_states(OutboundEmail.objects.order_by("lead_id"))


def lease_lapses(mailbox: Mailbox) -> None:
    Lease.objects.filter(name=f"send:mailbox:{mailbox.pk}").update(expires_at=timezone.now() - timedelta(seconds=1))


def assert_every_lead_has_a_plan_or_a_reason() -> None:
    """No lead IN_SEQUENCE with nothing planned, nothing to wait for and no reason."""
    for lead in Lead.objects.filter(status=Lead.Status.IN_SEQUENCE, next_send_at__isnull=True, blocked_reason=""):
        open_email = lead.outbound_emails.filter(step__position=lead.current_step + 1,
                                                 status__in=[Status.PENDING, Status.CLAIMED, Status.RETRY]).exists()
        last_step_sent = not lead.campaign.steps.filter(position=lead.current_step + 1).exists()
        assert open_email or last_step_sent, f"{lead.email} has nothing planned and no reason"


@pytest.mark.django_db
def test_a_crash_mid_batch_leaves_only_the_email_in_flight_unknown(smtp_server, monkeypatch):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 5)
    real_send, calls = SmtpProvider.send_when, itertools.count(1)

    def send_then_die_on_the_third(self, message, *, idempotency_key, ready, meanwhile=None):
        result = real_send(self, message, idempotency_key=idempotency_key, ready=ready, meanwhile=meanwhile)
        if next(calls) == 3:
            raise Killed  # the server said 250; the sender never got to write it down
        return result

    monkeypatch.setattr(SmtpProvider, "send_when", send_then_die_on_the_third)
    with pytest.raises(Killed):
        outbound_send_batch(mailbox_id=mailbox.pk)

    assert statuses() == [Status.SENT, Status.SENT, IN_FLIGHT, Status.CLAIMED, Status.CLAIMED]
    assert Lead.objects.filter(current_step=1).count() == 2  # each outcome came with its lead's progress
    lease_lapses(mailbox)
    assert outbound_recover_stuck() == {"recovered_requeued": 2, "recovered_retry": 0, "recovered_unknown": 1}
    assert statuses() == [Status.SENT, Status.SENT, Status.UNKNOWN, Status.PENDING, Status.PENDING]
    assert list(OutboundEmail.objects.order_by("lead_id").values_list("attempts", flat=True)) == [1, 1, 1, 0, 0]

    monkeypatch.setattr(SmtpProvider, "send_when", real_send)
    assert outreach_send()["sent"] == 2
    recipients = [message.rcpt_tos[0] for message in smtp_server.messages]
    assert sorted(recipients) == sorted(f"lead{n}@company{n}.example.com" for n in range(5))  # each once
    unknown = OutboundEmail.objects.get(status=Status.UNKNOWN)
    assert unknown.lead.blocked_reason == "send_unknown"
    assert_every_lead_has_a_plan_or_a_reason()


@pytest.mark.django_db
def test_a_crash_before_any_send_leaves_nothing_unknown(smtp_server, monkeypatch):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 3)

    def die(self, message, *, idempotency_key):
        raise Killed

    monkeypatch.setattr(SmtpProvider, "open", lambda self: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        outbound_send_batch(mailbox_id=mailbox.pk)
    lease_lapses(mailbox)
    assert outbound_recover_stuck()["recovered_unknown"] == 0
    assert set(statuses()) == {Status.PENDING}


@pytest.fixture
def resend(http_server, settings, monkeypatch):
    settings.AICMO_CAM_RESEND_API_URL = http_server.url("/")
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")
    return http_server


def resend_mailbox() -> Mailbox:
    return MailboxFactory(provider=Mailbox.Provider.RESEND, daily_cap=1000, min_gap_seconds=0)


@pytest.mark.django_db
def test_a_429_hands_the_rest_of_the_batch_back_without_counting_an_attempt(resend):
    resend.reply("/emails", Reply(200, {"id": "re-1"}), Reply(429, {"name": "rate_limit_exceeded",
                                                                    "message": "Too many requests"},
                                                             headers={"retry-after": "30"}), Reply(200, {"id": "re-n"}))
    mailbox = resend_mailbox()
    plan(open_campaign(mailbox), 4)

    counts = outbound_send_batch(mailbox_id=mailbox.pk)
    assert (counts["sent"], counts["retry"], counts["handed_back"]) == (1, 1, 2)
    assert len(resend.requests_to("/emails")) == 2  # nothing was asked of Resend for the last two
    emails = list(OutboundEmail.objects.order_by("lead_id"))
    assert [(e.status, e.attempts) for e in emails] == [
        (Status.SENT, 1), (Status.RETRY, 0), (Status.PENDING, 0), (Status.PENDING, 0)]
    for email in emails[1:]:
        assert timedelta(seconds=25) < email.next_attempt_at - timezone.now() <= timedelta(seconds=31)
    assert emails[2].last_error.startswith("Not tried: the batch was halted: Resend answered 429")
    assert not Mailbox.objects.get(pk=mailbox.pk).last_send_error  # slowing down is not failing

    OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outreach_send()["sent"] == 3
    assert list(OutboundEmail.objects.order_by("lead_id").values_list("attempts", flat=True)) == [1, 1, 1, 1]


@pytest.mark.django_db
def test_rate_limits_never_make_an_email_fail(resend):
    resend.reply("/emails", Reply(429, {"name": "rate_limit_exceeded", "message": "Slow down"},
                                  headers={"retry-after": "1"}))
    mailbox = resend_mailbox()
    plan(open_campaign(mailbox), 2)
    for _ in range(8):
        outreach_send()
        OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert len(resend.requests_to("/emails")) == 8  # one request a batch: the 429 halts it
    assert set(OutboundEmail.objects.values_list("attempts", flat=True)) == {0}
    assert set(OutboundEmail.objects.values_list("status", flat=True)) <= {Status.RETRY, Status.PENDING}


@pytest.mark.django_db
def test_it_gives_up_only_after_five_requests_that_reached_the_provider(resend):
    resend.reply("/emails", Reply(500, {"name": "application_error", "message": "Internal error"}))
    mailbox = resend_mailbox()
    plan(open_campaign(mailbox), 1)
    for _ in range(5):
        outreach_send()
        OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts, len(resend.requests_to("/emails"))) == (Status.FAILED, 5, 5)
    assert email.last_error.startswith("Gave up after 5 attempts.")


@pytest.mark.django_db
def test_a_recovered_resend_email_already_accepted_becomes_sent_from_resends_answer(resend):
    # Resend answers a repeated idempotency key with the first request's response.
    resend.reply("/emails", Reply(200, {"id": "re-accepted-before-the-crash"}))
    mailbox = resend_mailbox()
    plan(open_campaign(mailbox), 1)
    put_in_flight(OutboundEmail.objects.get(), holder="killed-worker:1")

    assert outbound_recover_stuck()["recovered_retry"] == 1
    assert outreach_send()["sent"] == 1
    email = OutboundEmail.objects.get()
    assert (email.status, email.provider_message_id, email.attempts) == (
        Status.SENT, "re-accepted-before-the-crash", 2)
    (request,) = resend.requests_to("/emails")
    assert request.headers["idempotency-key"] == f"cam-outbound-{email.pk}"


@pytest.mark.django_db
def test_an_unreachable_server_halts_the_batch_uncounted_and_names_the_mailbox(smtp_server):
    mailbox = smtp_mailbox(smtp_server, name="Sales 1", smtp_port=free_port())  # nothing listens there
    plan(open_campaign(mailbox), 3)

    counts = outbound_send_batch(mailbox_id=mailbox.pk)
    assert (counts["retry"], counts["handed_back"]) == (1, 2)
    (problem,) = counts["problems"]
    assert problem.startswith("mailbox Sales 1: Could not connect to the SMTP server")
    assert set(OutboundEmail.objects.values_list("attempts", flat=True)) == {0}
    for email in OutboundEmail.objects.all():
        assert email.next_attempt_at > timezone.now() + timedelta(seconds=50)  # not hammered every cycle
    mailbox.refresh_from_db()
    assert mailbox.last_send_error.startswith("Could not connect to the SMTP server")
    dashboard = get_dashboard()
    assert dashboard["health_status"] == "degraded"
    assert any(reason.startswith("mailbox Sales 1: cannot send") for reason in dashboard["health_reasons"])

    Mailbox.objects.filter(pk=mailbox.pk).update(smtp_port=smtp_server.port)
    OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outreach_send()["sent"] == 3
    assert Mailbox.objects.get(pk=mailbox.pk).last_send_error == ""


@pytest.mark.django_db
def test_a_batch_out_of_time_hands_its_untried_emails_back(smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 5)
    ticks = itertools.count()
    budget = Budget(deadline=2.5, clock=lambda: next(ticks))  # three more looks at the clock, then out of time

    counts = outbound_send_batch(mailbox_id=mailbox.pk, budget=budget)
    assert (counts["sent"], counts["handed_back"], counts["stopped"]) == (3, 2, "out of time")
    assert statuses().count(Status.PENDING) == 2
    assert not Lease.objects.exists()
    assert outreach_send()["sent"] == 2


@pytest.mark.django_db
def test_a_stop_request_ends_the_batch_after_the_email_in_flight(smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 4)
    stop = threading.Event()
    smtp_server.answer_data(Call(stop.set), "250 OK")

    counts = outbound_send_batch(mailbox_id=mailbox.pk, budget=Budget(stop=stop))
    assert (counts["sent"], counts["handed_back"], counts["stopped"]) == (1, 3, "stopped")
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_longer_than_its_lease_keeps_it_and_nobody_else_sends_for_the_mailbox(smtp_server, settings):
    settings.AICMO_CAM_LOCK_TTL_SECONDS = 1  # renewed every 0.25 s; the batch takes about 2 s
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 5)
    refused, done = [], threading.Event()

    def intruder():
        while not done.is_set():
            refused.append(not lease_acquire(name=f"send:mailbox:{mailbox.pk}", holder="intruder:1"))
            done.wait(0.1)
        connection.close()

    thread = threading.Thread(target=intruder)
    smtp_server.answer_data(Call(thread.start), Stall(0.4))  # from the first email on, the batch holds the lease
    try:
        assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 5
    finally:
        done.set()
        thread.join()
    assert len(refused) > 10 and all(refused[:-1])  # the last try may come after the batch let go


@pytest.mark.django_db(transaction=True)
def test_a_sender_that_lost_its_lease_stops_at_once(smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 4)

    def taken_over():  # the lease lapsed and another worker took it
        Lease.objects.filter(name=f"send:mailbox:{mailbox.pk}").update(holder="other-worker:1")
        connection.close()  # this runs in the SMTP server's thread, on a connection of its own

    smtp_server.answer_data("250 OK", Call(taken_over), "250 OK")
    counts = outbound_send_batch(mailbox_id=mailbox.pk, budget=Budget(renew_every=0))  # renewed before each email
    assert counts["sent"] == 2
    assert counts["stopped"].startswith(f"lease send:mailbox:{mailbox.pk} lost")
    assert len(smtp_server.messages) == 2
    assert Lease.objects.get().holder == "other-worker:1"  # not released by the one that lost it


@pytest.mark.django_db(transaction=True)
def test_each_emails_data_reaches_the_server_only_after_its_in_flight_mark_and_the_outcome_before_it_are_committed(
        smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 3)
    seen = []

    def look():  # as the server reads each message's data, from a connection of its own: what is committed
        seen.append(statuses())
        connection.close()  # this runs in the SMTP server's thread

    smtp_server.answer_data(Call(look))
    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 3

    assert seen == [[IN_FLIGHT, Status.CLAIMED, Status.CLAIMED],
                    [Status.SENT, IN_FLIGHT, Status.CLAIMED],
                    [Status.SENT, Status.SENT, IN_FLIGHT]]
    assert statuses() == [Status.SENT] * 3


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_on_postgresql_the_outcome_statement_is_prepared_once_per_connection(smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 8)

    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 8

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'WITH outcome AS%%'")
        prepared = [row[0] for row in cursor.fetchall()]
    assert prepared, "the outcome statement runs for every email: it should be parsed and planned once"
    assert statuses() == [Status.SENT] * 8


@pytest.fixture
def database_through_proxy(settings):
    """The test's database connection, routed through a proxy the test can cut (PostgreSQL)."""
    from tests.servers.tcpproxy import TcpProxy

    real = dict(connection.settings_dict)
    with TcpProxy(real["HOST"] or "127.0.0.1", int(real["PORT"] or 5432)) as proxy:
        connection.close()
        connection.settings_dict.update(HOST=proxy.host, PORT=str(proxy.port))
        try:
            yield proxy
        finally:
            connection.close()
            connection.settings_dict.update(HOST=real["HOST"], PORT=real["PORT"])


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_batch_stops_at_the_first_send_after_its_database_connection_died(
        smtp_server, database_through_proxy, monkeypatch):
    monkeypatch.setattr(sending, "OUTCOME_WRITE_PATIENCE", 1.0)
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 5)
    smtp_server.answer_data("250 OK", Call(database_through_proxy.cut), "250 OK")

    with pytest.raises(OperationalError):
        outbound_send_batch(mailbox_id=mailbox.pk)
    assert len(smtp_server.messages) == 2  # nothing more went out once the database was gone

    database_through_proxy.restore()
    connection.close()
    assert statuses() == [Status.SENT, IN_FLIGHT, Status.CLAIMED, Status.CLAIMED, Status.CLAIMED]
    lease_lapses(mailbox)
    assert outbound_recover_stuck() == {"recovered_requeued": 3, "recovered_retry": 0, "recovered_unknown": 1}
    assert outreach_send()["sent"] == 3
    assert len({message.rcpt_tos[0] for message in smtp_server.messages}) == len(smtp_server.messages) == 5
    assert_every_lead_has_a_plan_or_a_reason()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_outcome_waits_for_a_database_that_comes_back_rather_than_turn_unknown(
        smtp_server, database_through_proxy):
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 3)

    def blip():
        database_through_proxy.cut()
        threading.Timer(1.0, database_through_proxy.restore).start()

    smtp_server.answer_data(Call(blip), "250 OK")
    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 3
    assert set(statuses()) == {Status.SENT}
    assert database_through_proxy.cuts == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_step_whose_next_claim_meets_a_database_blip_still_records_the_email_before(
        smtp_server, database_through_proxy, settings):
    """The next claim is made as a claim's last email goes, with the email before's outcome still to write:
    the claim failing must not lose that outcome (it would turn UNKNOWN); the step claims no more."""
    settings.AICMO_CAM_SEND_BATCH_SIZE = 2
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 4)

    def blip():  # the first email has arrived; the step is about to claim the next two
        database_through_proxy.cut()
        threading.Timer(1.0, database_through_proxy.restore).start()

    smtp_server.answer_data(Call(blip), "250 OK")
    assert mailbox_send_due(mailbox_id=mailbox.pk)["sent"] == 2

    assert database_through_proxy.cuts == 1
    assert statuses() == [Status.SENT, Status.SENT, Status.PENDING, Status.PENDING]
    assert mailbox_send_due(mailbox_id=mailbox.pk)["sent"] == 2  # the next step takes the rest
    assert sorted(message.rcpt_tos[0] for message in smtp_server.messages) == [
        f"lead{n}@company{n}.example.com" for n in range(4)]  # each once
    assert_every_lead_has_a_plan_or_a_reason()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_in_flight_while_the_envelope_goes_out_is_written_again_once_the_database_is_back(
        smtp_server, database_through_proxy):
    """On PostgreSQL the outcome statement is sent and the envelope goes out before its answer is read:
    the connection dies under it, and the sender writes it again the patient way before any data."""
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 3)
    seen = []

    def blip():  # while the server holds the second email's RCPT, before the mark of it in flight is answered
        database_through_proxy.cut()
        seen.append(len(smtp_server.messages))
        threading.Timer(1.0, database_through_proxy.restore).start()

    smtp_server.answer_rcpt("lead1@company1.example.com", Call(blip))
    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 3

    assert seen == [1] and database_through_proxy.cuts == 1
    assert set(statuses()) == {Status.SENT}
    assert sorted(message.rcpt_tos[0] for message in smtp_server.messages) == [
        f"lead{n}@company{n}.example.com" for n in range(3)]  # each once
    assert_every_lead_has_a_plan_or_a_reason()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_outcome_statement_is_prepared_again_when_the_connection_dropped_its_prepared_statements(smtp_server):
    """psycopg runs DEALLOCATE ALL after a rollback while statements of its own are prepared: the outcome
    statement sent ahead then finds nothing to run, and is prepared again rather than failing the batch."""
    mailbox = smtp_mailbox(smtp_server)
    plan(open_campaign(mailbox), 4)
    assert outbound_send_batch(mailbox_id=mailbox.pk, limit=2)["sent"] == 2

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 2

    assert statuses() == [Status.SENT] * 4
    assert len(smtp_server.messages) == 4
