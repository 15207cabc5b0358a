"""The send step against a real SMTP server, with PIPELINING and without: what arrives, threading, outcomes,
crashes, concurrency."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cam.models import Lead, Mailbox, OutboundEmail, SendInFlight
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outbound_claim, outbound_recover_stuck, outbound_send_batch, outreach_send
from cam.outreach.unsubscribe import unsubscribe_url
from tests.concurrency import run_at_once
from tests.factories import (
    IN_FLIGHT,
    CampaignFactory,
    LeadFactory,
    MailboxFactory,
    SequenceStepFactory,
    email_states,
    put_in_flight,
)
from tests.servers.smtp import DROP, SmtpTestServer

Status = OutboundEmail.Status


@pytest.fixture(params=[False, True], ids=["one command at a time", "pipelining"])
def smtp_server(request):
    """Every test of the send step against a server that takes commands one at a time and one that offers
    PIPELINING, where each email's envelope goes with the data of the email before it."""
    with SmtpTestServer(pipelining=request.param) as server:
        yield server


def smtp_mailbox(server, **fields) -> Mailbox:
    # A cap of 1,000 an hour: whatever hour the test runs at, the hour's share of its day never holds a lead.
    values = {"provider": Mailbox.Provider.SMTP, "smtp_host": server.host, "smtp_port": server.port,
              "smtp_security": "none", "daily_cap": 24_000, "min_gap_seconds": 0, "from_name": "Alex Sender",
              "from_email": "alex@outreach.example.com", **fields}
    return MailboxFactory(**values)


def open_campaign(mailbox: Mailbox, **fields):
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24, daily_cap=10_000,
                            **fields)
    owner.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=owner, position=1, subject_template="{{ company }} and fewer hand-offs",
                        body_template="Hi {{ first_name|default:'there' }}, quick question about {{ company }}.",
                        html_template="<p>Hi {{ first_name|default:'there' }}</p>")
    SequenceStepFactory(campaign=owner, position=2, subject_template="", body_template="Bumping this up.",
                        delay_days=2)
    return owner


def due_lead(owner, **fields) -> Lead:
    return LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE,
                       next_send_at=timezone.now() - timedelta(minutes=1), **fields)


def send_now():
    outreach_plan()
    return outreach_send(inline=True)


@pytest.mark.django_db
def test_it_delivers_a_personalised_compliant_first_email(smtp_server, settings):
    settings.AICMO_CAM_POSTAL_ADDRESS = "CAM GmbH, Hauptstraße 1, 10115 Berlin"
    mailbox = smtp_mailbox(smtp_server)
    lead = due_lead(open_campaign(mailbox), first_name="Anna", company="Brightlane",
                    email="anna@brightlane.example.com")
    assert send_now()["sent"] == 1

    (received,) = smtp_server.messages
    message = received.parsed
    assert received.rcpt_tos == ["anna@brightlane.example.com"]
    assert message["Subject"] == "Brightlane and fewer hand-offs"
    assert message["From"] == "Alex Sender <alex@outreach.example.com>"
    sent = OutboundEmail.objects.get()
    assert message["Message-ID"].strip() == sent.message_id
    url = unsubscribe_url(lead)
    assert message["List-Unsubscribe"].strip().startswith(f"<{url}>, <mailto:")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith("Hi Anna, quick question about Brightlane.")
    assert "CAM GmbH, Hauptstraße 1, 10115 Berlin" in text and url in text
    assert "<p>Hi Anna</p>" in message.get_body(preferencelist=("html",)).get_content()

    sent.refresh_from_db()
    lead.refresh_from_db()
    assert (sent.status, sent.attempts, sent.provider_message_id) == (Status.SENT, 1, sent.message_id)
    assert (lead.current_step, lead.blocked_reason) == (1, "")
    assert timedelta(days=2) - timedelta(minutes=1) < lead.next_send_at - sent.sent_at <= timedelta(days=2)
    assert Mailbox.objects.get(pk=mailbox.pk).last_sent_at == sent.sent_at


@pytest.mark.django_db
def test_it_sends_the_follow_up_as_a_reply_in_the_same_thread(smtp_server):
    lead = due_lead(open_campaign(smtp_mailbox(smtp_server)), company="Brightlane")
    send_now()
    Lead.objects.filter(pk=lead.pk).update(next_send_at=timezone.now() - timedelta(seconds=1))
    assert send_now()["sent"] == 1

    first, second = (m.parsed for m in smtp_server.messages)
    assert second["Subject"] == "Re: Brightlane and fewer hand-offs"
    assert second["In-Reply-To"].strip() == first["Message-ID"].strip()
    assert second["References"].strip() == first["Message-ID"].strip()
    lead.refresh_from_db()
    assert (lead.current_step, lead.next_send_at) == (2, None)  # the last step: now the no-reply wait


@pytest.mark.django_db
def test_it_records_a_refused_recipient_as_failed_with_the_servers_words(smtp_server):
    owner = open_campaign(smtp_mailbox(smtp_server))
    smtp_server.answer_rcpt("ghost@brightlane.example.com", "550 5.1.1 No such user here")
    lead = due_lead(owner, email="ghost@brightlane.example.com")
    assert send_now()["failed"] == 1
    email = OutboundEmail.objects.get()
    assert email.status == Status.FAILED and "No such user here" in email.last_error
    lead.refresh_from_db()
    assert lead.blocked_reason == "send_failed"


@pytest.mark.django_db
def test_it_retries_a_temporary_refusal_later_and_gives_up_after_five_attempts(smtp_server):
    owner = open_campaign(smtp_mailbox(smtp_server))
    smtp_server.answer_data("451 4.3.0 Try again later")
    due_lead(owner)
    assert send_now()["retry"] == 1
    email = OutboundEmail.objects.get()
    assert email.status == Status.RETRY and email.next_attempt_at > timezone.now()
    for _ in range(4):
        OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        outreach_send()
    email.refresh_from_db()
    assert (email.status, email.attempts) == (Status.FAILED, 5)
    assert email.last_error.startswith("Gave up after 5 attempts.")


@pytest.mark.django_db
def test_it_never_resends_an_email_whose_connection_dropped_after_the_data(smtp_server):
    owner = open_campaign(smtp_mailbox(smtp_server))
    smtp_server.answer_data(DROP)
    lead = due_lead(owner)
    assert send_now()["unknown"] == 1
    assert OutboundEmail.objects.get().status == Status.UNKNOWN
    OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    assert outreach_send() == {"mailboxes": 0}
    lead.refresh_from_db()
    assert lead.blocked_reason == "send_unknown"


@pytest.mark.django_db
def test_it_turns_an_smtp_email_left_in_flight_by_a_dead_sender_into_unknown(smtp_server):
    owner = open_campaign(smtp_mailbox(smtp_server))
    lead = due_lead(owner)
    outreach_plan()
    put_in_flight(OutboundEmail.objects.get(), holder="dead-worker:0a1b")
    assert outbound_recover_stuck() == {"recovered_requeued": 0, "recovered_retry": 0, "recovered_unknown": 1}
    assert not SendInFlight.objects.exists()  # the dead sender's mark goes with it
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts) == (Status.UNKNOWN, 1)  # its request may well have gone out
    assert "may have gone out" in email.last_error
    assert outreach_send() == {"mailboxes": 0}
    assert smtp_server.messages == []
    lead.refresh_from_db()
    assert lead.blocked_reason == "send_unknown"


@pytest.mark.django_db
def test_it_retries_a_resend_email_left_in_flight_by_a_dead_sender():
    mailbox = MailboxFactory(provider=Mailbox.Provider.RESEND, daily_cap=100, min_gap_seconds=0)
    due_lead(open_campaign(mailbox))
    outreach_plan()
    OutboundEmail.objects.update(attempts=1)
    put_in_flight(OutboundEmail.objects.get(), holder="dead-worker:0a1b")
    assert outbound_recover_stuck() == {"recovered_requeued": 0, "recovered_retry": 1, "recovered_unknown": 0}
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts, email.claimed_by) == (Status.RETRY, 2, "")


@pytest.mark.django_db
def test_it_puts_rows_a_dead_sender_claimed_but_never_tried_back_in_the_queue_uncounted():
    mailbox = MailboxFactory(daily_cap=100, min_gap_seconds=0)
    owner = open_campaign(mailbox)
    first, retried = due_lead(owner), due_lead(owner)
    outreach_plan()
    OutboundEmail.objects.update(status=Status.CLAIMED, claimed_by="dead-worker:0a1b")
    OutboundEmail.objects.filter(lead=retried).update(attempts=2)
    assert outbound_recover_stuck() == {"recovered_requeued": 2, "recovered_retry": 0, "recovered_unknown": 0}
    assert [(e.status, e.attempts, e.claimed_by) for e in OutboundEmail.objects.order_by("lead_id")] == [
        (Status.PENDING, 0, ""), (Status.RETRY, 2, "")]
    assert outreach_send()["sent"] == 2
    assert first.pk < retried.pk


@pytest.mark.django_db
def test_it_leaves_the_rows_of_a_sender_that_still_holds_its_lease_alone():
    from cam.locks import lease_acquire

    mailbox = MailboxFactory(daily_cap=100, min_gap_seconds=0)
    owner = open_campaign(mailbox)
    due_lead(owner), due_lead(owner)
    outreach_plan()
    assert lease_acquire(name=f"send:mailbox:{mailbox.pk}", holder="live-worker:1")
    OutboundEmail.objects.update(status=Status.CLAIMED, claimed_by="live-worker:1")
    put_in_flight(OutboundEmail.objects.first(), holder="live-worker:1")
    assert outbound_recover_stuck() == {"recovered_requeued": 0, "recovered_retry": 0, "recovered_unknown": 0}
    assert sorted(email_states(OutboundEmail.objects.all())) == [Status.CLAIMED, IN_FLIGHT]


@pytest.mark.django_db
def test_it_cancels_an_email_whose_address_was_suppressed_after_planning(smtp_server):
    from tests.factories import SuppressionFactory

    lead = due_lead(open_campaign(smtp_mailbox(smtp_server)), email="late@brightlane.example.com")
    outreach_plan()
    SuppressionFactory(email="late@brightlane.example.com")
    assert outreach_send()["cancelled"] == 1
    assert smtp_server.messages == []
    assert OutboundEmail.objects.get().status == Status.CANCELLED
    lead.refresh_from_db()
    assert lead.blocked_reason == "suppressed"


@pytest.mark.django_db
def test_it_sends_one_email_per_minimum_gap_per_batch(smtp_server):
    mailbox = smtp_mailbox(smtp_server, min_gap_seconds=600)
    owner = open_campaign(mailbox)
    for _ in range(3):
        due_lead(owner)
    outreach_plan()
    assert outbound_send_batch(mailbox_id=mailbox.pk) == {"sent": 1}
    assert outbound_send_batch(mailbox_id=mailbox.pk) == {"waiting_gap": 1}
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db
def test_it_writes_each_email_with_the_same_few_statements_however_big_the_batch(smtp_server, settings):
    """Per email, one commit: the previous email's outcome and its lead's progress, and this email
    marked in flight — the price of a crash losing at most the one email in flight. The rest of the
    batch is a fixed number of statements."""
    settings.AICMO_CAM_SEND_BATCH_SIZE = 500

    def queries_for(count: int) -> int:
        mailbox = smtp_mailbox(smtp_server, from_email=f"batch{count}@outreach.example.com", name=f"Batch {count}")
        owner = open_campaign(mailbox)
        for _ in range(count):
            due_lead(owner)
        outreach_plan(campaign=owner)
        with CaptureQueriesContext(connection) as captured:
            assert outbound_send_batch(mailbox_id=mailbox.pk) == {"sent": count}
        return len(captured)

    ten, two_hundred = queries_for(10), queries_for(200)
    per_email = (two_hundred - ten) / 190
    # PostgreSQL: one statement. SQLite: a savepoint (in a test), outcome, lead, mark, release.
    assert per_email == (1 if connection.vendor == "postgresql" else 5)
    assert ten - 10 * per_email <= 21  # claim, lease, suppressions, steps, the mailbox, its domain: once a batch


@pytest.mark.django_db(transaction=True)
def test_two_senders_over_the_same_500_due_leads_deliver_each_email_exactly_once(smtp_server, settings):
    settings.AICMO_CAM_SEND_BATCH_SIZE = 60
    owner = open_campaign(smtp_mailbox(smtp_server))
    second_mailbox = smtp_mailbox(smtp_server, from_email="bea@outreach.example.com", name="Bea")
    owner.mailboxes.add(second_mailbox)
    for n in range(500):
        due_lead(owner, email=f"lead{n}@company{n % 50}.example.com")
    def sender():
        for _ in range(12):
            outreach_plan()
            outreach_send(inline=True)

    _, errors = run_at_once(sender, threads=2, timeout=300)
    assert errors == []
    recipients = [message.rcpt_tos[0] for message in smtp_server.messages]
    assert len(recipients) == 500
    assert len(set(recipients)) == 500
    assert OutboundEmail.objects.filter(status=Status.SENT).count() == 500
    assert not OutboundEmail.objects.exclude(status=Status.SENT).exists()


def eight_due_in_batches_of_three(smtp_server, settings) -> None:
    settings.AICMO_CAM_SEND_BATCH_SIZE = 3
    owner = open_campaign(smtp_mailbox(smtp_server))
    for n in range(8):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")


@pytest.mark.django_db
def test_a_run_sends_everything_due_batch_after_batch_not_one_batch_per_mailbox(smtp_server, settings):
    eight_due_in_batches_of_three(smtp_server, settings)

    counts = send_now()

    assert counts["sent"] == 8 and "stopped" not in counts
    assert len(smtp_server.messages) == 8
    assert not OutboundEmail.objects.exclude(status=OutboundEmail.Status.SENT).exists()


@pytest.mark.django_db
def test_a_step_counts_the_suppressed_emails_of_every_claim_not_only_the_last(smtp_server, settings):
    from tests.factories import SuppressionFactory

    eight_due_in_batches_of_three(smtp_server, settings)
    outreach_plan()
    # Claims of 3, then 6: the first email claimed and the last are in different claims.
    in_claim_order = list(OutboundEmail.objects.order_by("next_attempt_at", "pk").values_list("to_email", flat=True))
    SuppressionFactory(email=in_claim_order[0])
    SuppressionFactory(email=in_claim_order[-1])

    counts = outreach_send(inline=True)

    assert (counts["sent"], counts["cancelled"]) == (6, 2)
    assert OutboundEmail.objects.filter(status=Status.CANCELLED).count() == 2


@pytest.mark.django_db
def test_a_mailboxs_step_claims_batch_after_batch_under_one_lease_with_a_connection_per_batch(smtp_server, settings):
    """One lease and one stream of outcomes for the whole step; each claim is a batch (what a crash can leave
    claimed), and each connection takes at most a batch's worth of emails, as when batches had their own."""
    from cam.locks import lease_acquire
    from cam.outreach.sending import mailbox_send_due

    eight_due_in_batches_of_three(smtp_server, settings)
    outreach_plan()
    mailbox = Mailbox.objects.get()
    taken = []

    def counting_acquire(**kwargs):
        taken.append(kwargs["name"])
        return lease_acquire(**kwargs)

    with mock.patch("cam.outreach.sending.lease_acquire", counting_acquire):
        counts = mailbox_send_due(mailbox_id=mailbox.pk)

    assert counts == {"sent": 8}
    assert taken == [f"send:mailbox:{mailbox.pk}"]
    assert sorted(message.rcpt_tos[0] for message in smtp_server.messages) == sorted(
        OutboundEmail.objects.values_list("to_email", flat=True))
    assert len(smtp_server.sessions) == 3  # 3 + 3 + 2
    assert not OutboundEmail.objects.exclude(status=Status.SENT).exists()
    assert Lead.objects.filter(current_step=1, next_send_at__isnull=False).count() == 8


@pytest.mark.django_db
def test_with_pipelining_each_email_goes_with_the_data_of_the_one_before_on_its_connection(smtp_server, settings):
    """Each envelope in the same write as the data before it: one round trip an email. A connection's last
    email has nothing behind it, as the next goes on a new connection."""
    eight_due_in_batches_of_three(smtp_server, settings)

    assert send_now()["sent"] == 8

    assert len(smtp_server.sessions) == 3  # 3 + 3 + 2
    assert len(smtp_server.followed) == (2 + 2 + 1 if smtp_server.pipelining else 0)
    assert sorted(message.rcpt_tos[0] for message in smtp_server.received) == sorted(
        OutboundEmail.objects.filter(status=Status.SENT).values_list("to_email", flat=True))


@pytest.mark.django_db
def test_the_next_message_is_built_ahead_without_a_query(smtp_server, monkeypatch):
    """With PIPELINING the next message is built while the outcome statement is in flight on the database
    connection, which nothing else may use until its answer is read: building reads only what the claim
    loaded, a signed return path, an HTML part and an unsubscribe link included."""
    from cam.outreach import sending

    owner = open_campaign(smtp_mailbox(smtp_server, verp_return_path=True, reply_to="team@outreach.example.com"))
    for n in range(4):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    built, queries = [], []
    build_message = sending.build_message

    def watched(row):
        with CaptureQueriesContext(connection) as captured:
            message = build_message(row)
        built.append(row.pk)
        queries.extend(captured.captured_queries)
        return message

    monkeypatch.setattr(sending, "build_message", watched)

    assert send_now()["sent"] == 4

    assert len(built) == 4 and queries == []
    assert all(message.mail_from.startswith("alex+") for message in smtp_server.messages)  # the signed return path


@pytest.mark.django_db
def test_a_step_out_of_time_after_an_email_delivers_nothing_of_the_next_whose_envelope_went_ahead(
        smtp_server, settings):
    from cam.budget import Budget

    eight_due_in_batches_of_three(smtp_server, settings)
    outreach_plan()
    # The time runs out once the server took the first email.
    budget = Budget(deadline=1, clock=lambda: float(len(smtp_server.received)))

    counts = outreach_send(inline=True, budget=budget)

    assert (counts["sent"], counts["stopped"]) == (1, "out of time")
    assert len(smtp_server.received) == 1  # the second's envelope went with the first's data, if pipelining
    assert smtp_server.followed == ([smtp_server.received[0].rcpt_tos[0]] if smtp_server.pipelining else [])
    assert OutboundEmail.objects.filter(status=Status.PENDING).count() == 7
    assert outreach_send(inline=True)["sent"] == 7
    assert len(smtp_server.messages) == 8


@pytest.mark.django_db
def test_a_step_of_claims_costs_the_same_few_statements_per_claim_however_many(smtp_server, settings):
    from cam.outreach.sending import mailbox_send_due

    settings.AICMO_CAM_SEND_BATCH_SIZE = 5

    def queries_for(count: int) -> int:
        mailbox = smtp_mailbox(smtp_server, from_email=f"step{count}@outreach.example.com", name=f"Step {count}")
        owner = open_campaign(mailbox)
        for _ in range(count):
            due_lead(owner)
        outreach_plan(campaign=owner)
        with CaptureQueriesContext(connection) as captured:
            assert mailbox_send_due(mailbox_id=mailbox.pk) == {"sent": count}
        return len(captured)

    per_email = 1 if connection.vendor == "postgresql" else 5  # as in a single batch
    ten, forty = queries_for(10) - 10 * per_email, queries_for(40) - 40 * per_email
    # Ten: claims of 5 and 10 (five come back). Forty: 5, 10, 20 and 40 (five come back): two claims more. Each
    # further claim: PostgreSQL, one statement (an UPDATE of the rows a SELECT … FOR UPDATE SKIP LOCKED picks,
    # returning them whole) and their suppressions; SQLite, a transaction (a savepoint and its release, in a
    # test) of a select and a conditional update, then the rows it took and their suppressions. The campaign's
    # steps are read once.
    per_claim = (forty - ten) / 2
    assert per_claim == (2 if connection.vendor == "postgresql" else 6)


@pytest.mark.django_db
def test_a_steps_claims_double_while_they_come_back_full_up_to_eight_batches(smtp_server, settings):
    from cam.outreach import sending
    from cam.outreach.sending import mailbox_send_due

    settings.AICMO_CAM_SEND_BATCH_SIZE = 2
    owner = open_campaign(smtp_mailbox(smtp_server))
    for n in range(40):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    outreach_plan()
    limits = []

    def claim(**kwargs):
        limits.append(kwargs["limit"])
        return outbound_claim(**kwargs)

    with mock.patch.object(sending, "outbound_claim", claim):
        assert mailbox_send_due(mailbox_id=Mailbox.objects.get().pk) == {"sent": 40}

    assert limits == [2, 4, 8, 16, 16]  # 2 + 4 + 8 + 16, then the last 10 of a claim of 16
    assert len(smtp_server.sessions) == 20  # a connection still takes a batch's worth: 2 emails


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_a_claim_reads_its_batch_in_order_and_stops_however_many_are_due(smtp_server):
    """A plan writes thousands of emails with one time: the claim must not sort them all to take its batch."""
    from cam.outreach.sending import _ready, claim_statement

    mailbox = smtp_mailbox(smtp_server)
    owner = open_campaign(mailbox)
    for _ in range(3):
        due_lead(owner)
    outreach_plan()
    ready = _ready(timezone.now()).filter(mailbox=mailbox).order_by("next_attempt_at", "pk")
    sql, params = claim_statement(ready, limit=50, claim={"status": Status.CLAIMED, "claimed_by": "x"})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: the question is whether it can
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "outbound_ready_idx" in plan
    assert "Sort" not in plan
    assert "LockRows" in plan  # FOR UPDATE SKIP LOCKED: two senders never take the same row


@pytest.mark.django_db
def test_a_run_out_of_time_leaves_the_rest_due_for_the_next(smtp_server, settings):
    from cam.budget import Budget

    eight_due_in_batches_of_three(smtp_server, settings)
    outreach_plan()
    ticks = iter(range(1_000))
    budget = Budget(deadline=4, clock=lambda: next(ticks))  # a few checks' worth of time: the first batch's

    counts = outreach_send(inline=True, budget=budget)

    assert 0 < counts["sent"] < 8 and counts["stopped"] == "out of time"
    assert OutboundEmail.objects.filter(status=OutboundEmail.Status.PENDING).count() == 8 - counts["sent"]
    assert outreach_send(inline=True)["sent"] == 8 - counts["sent"]  # the next run takes the rest


@pytest.mark.django_db
def test_a_scheduled_outreach_run_fans_the_sending_out_to_the_task_queue(
        smtp_server, monkeypatch, django_capture_on_commit_callbacks):
    from django_q.conf import Conf
    from django_q.models import Success

    from cam.jobs.runner import Trigger, run_job

    monkeypatch.setattr(Conf, "SYNC", True)  # the cluster's worker runs each queued task right here
    first, second = smtp_mailbox(smtp_server), smtp_mailbox(smtp_server, from_email="bea@outreach.example.com",
                                                             name="Bea")
    owner = open_campaign(first)
    owner.mailboxes.add(second)
    for _ in range(4):
        due_lead(owner)
    with django_capture_on_commit_callbacks(execute=True):
        result = run_job("outreach", trigger=Trigger.SCHEDULE)
    assert (result.status, result.counts["planned"], result.counts["queued"]) == ("COMPLETED", 4, 2)
    assert len(smtp_server.messages) == 4
    assert Success.objects.filter(group="cam: send").count() == 2


@pytest.mark.django_db
def test_it_sends_through_resend_and_retries_a_timeout_with_the_same_idempotency_key(
        http_server, settings, monkeypatch):
    from tests.servers.http import Reply

    settings.AICMO_CAM_RESEND_API_URL = http_server.url("/")
    settings.AICMO_CAM_RESEND_TIMEOUT_SECONDS = 0.3
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")
    http_server.reply("/emails", Reply(200, {"id": "late"}, delay=2), Reply(200, {"id": "re-4711"}))
    mailbox = MailboxFactory(provider=Mailbox.Provider.RESEND, daily_cap=100, min_gap_seconds=0)
    lead = due_lead(open_campaign(mailbox), first_name="Anna")

    assert send_now()["retry"] == 1
    email = OutboundEmail.objects.get()
    assert email.status == Status.RETRY and "timed out" in email.last_error
    OutboundEmail.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outreach_send()["sent"] == 1

    email.refresh_from_db()
    assert (email.status, email.provider_message_id, email.attempts) == (Status.SENT, "re-4711", 2)
    keys = [request.headers["idempotency-key"] for request in http_server.requests_to("/emails")]
    assert keys == [f"cam-outbound-{email.pk}"] * 2
    body = http_server.requests_to("/emails")[-1].json()
    assert body["to"] == [lead.email] and body["subject"] == email.subject
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.django_db
def test_it_fails_an_email_resend_refuses_with_its_message(http_server, settings, monkeypatch):
    from tests.servers.http import Reply

    settings.AICMO_CAM_RESEND_API_URL = http_server.url("/")
    monkeypatch.setenv("CAM_SECRET_RESEND_API_KEY", "re_test_123")
    http_server.reply("/emails", Reply(422, {"statusCode": 422, "name": "validation_error",
                                             "message": "Invalid `to` field."}))
    due_lead(open_campaign(MailboxFactory(provider=Mailbox.Provider.RESEND, daily_cap=100, min_gap_seconds=0)))
    assert send_now()["failed"] == 1
    email = OutboundEmail.objects.get()
    assert email.status == Status.FAILED and "Invalid `to` field." in email.last_error
