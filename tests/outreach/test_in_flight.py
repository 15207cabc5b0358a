"""The email a sender has in the provider's hands: named by its holder's ``SendInFlight`` row, never cancelled
under it, and never sent once a cancel took it first (``cam.in_flight``, ``cam.outreach.outcomes``)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from cam.leads import emails_cancel, lead_unsubscribe, leads_change_status
from cam.models import Lead, OutboundEmail, SendInFlight
from cam.outreach.outbound import outbound_cancel
from cam.outreach.outcomes import outcome_write
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outbound_claim, outbound_send_batch
from tests.factories import IN_FLIGHT, MailboxFactory, email_states
from tests.outreach.test_sending import due_lead, open_campaign

Status = OutboundEmail.Status
HOLDER = "worker-1:0a1b2c"


def claimed(count: int) -> list[OutboundEmail]:
    """``count`` planned emails of one mailbox, claimed by ``HOLDER``'s batch, in order."""
    mailbox = MailboxFactory(daily_cap=1000, min_gap_seconds=0)
    owner = open_campaign(mailbox)
    for n in range(count):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    outreach_plan()
    return outbound_claim(mailbox=mailbox, limit=count, now=timezone.now(), holder=HOLDER)


def mark(email: OutboundEmail) -> bool:
    """The sender marks ``email`` in flight (as before its data goes out); whether it is still the batch's."""
    _, ours = outcome_write(holder=HOLDER, row=None, outcome=None, next_id=email.pk, now=timezone.now())
    return ours


def states(emails: list[OutboundEmail]) -> list[str]:
    return email_states(OutboundEmail.objects.filter(pk__in=[email.pk for email in emails]).order_by("pk"))


def stop_lead(email: OutboundEmail) -> None:
    leads_change_status(lead_ids=[email.lead_id], to_status=Lead.Status.LOST, actor="staff:anna")


def cancel_email(email: OutboundEmail) -> None:
    outbound_cancel(outbound_ids=[email.pk], by="staff:anna")


def unsubscribe_lead(email: OutboundEmail) -> None:
    lead_unsubscribe(lead=Lead.objects.get(pk=email.lead_id), source="the footer's link")


@pytest.mark.django_db
def test_marking_an_email_in_flight_names_it_for_its_holder_and_the_batchs_end_clears_it():
    first, second = claimed(2)

    assert mark(first)
    assert states([first, second]) == [IN_FLIGHT, Status.CLAIMED]
    assert mark(second)  # the next email: the holder has one in flight at a time
    assert states([first, second]) == [Status.CLAIMED, IN_FLIGHT]
    outcome_write(holder=HOLDER, row=None, outcome=None, next_id=None, now=timezone.now())
    assert not SendInFlight.objects.exists()


@pytest.mark.django_db
def test_a_batch_leaves_nothing_in_flight_behind(smtp_server):
    from tests.outreach.test_sending import smtp_mailbox

    mailbox = smtp_mailbox(smtp_server)
    owner = open_campaign(mailbox)
    for n in range(3):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    outreach_plan()

    assert outbound_send_batch(mailbox_id=mailbox.pk)["sent"] == 3
    assert not SendInFlight.objects.exists()
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {Status.SENT}


@pytest.mark.django_db
@pytest.mark.parametrize("stop", [stop_lead, cancel_email, unsubscribe_lead])
def test_what_cancels_claimed_emails_leaves_the_one_in_flight_to_its_sender(stop):
    flying, waiting = claimed(2)
    assert mark(flying)

    stop(flying)
    stop(waiting)

    # The one in flight is the sender's to record (SENT, or UNKNOWN if it dies); the other never goes.
    assert states([flying, waiting]) == [IN_FLIGHT, Status.CANCELLED]
    assert not mark(waiting)


@pytest.mark.django_db
def test_a_cancelled_email_is_not_marked_in_flight_so_it_is_not_sent():
    (email,) = claimed(1)
    with transaction.atomic():
        assert emails_cancel(OutboundEmail.objects.filter(pk=email.pk), why="Cancelled by staff:anna.",
                             now=timezone.now()) == 1

    assert not mark(email)
    assert states([email]) == [Status.CANCELLED]


def _in_thread(work) -> tuple[threading.Thread, list]:
    """``work`` on a thread of its own (its own connection); what it returned, once done."""
    returned: list = []

    def run():
        try:
            returned.append(work())
        except Exception as exc:  # handed to the test, which asserts what came back
            returned.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, returned


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_mark_waits_for_a_cancel_that_locked_the_email_first_and_then_does_not_send_it():
    (email,) = claimed(1)

    with transaction.atomic():
        assert emails_cancel(OutboundEmail.objects.filter(pk=email.pk), why="Cancelled by staff:anna.",
                             now=timezone.now()) == 1
        marking, answer = _in_thread(lambda: mark(email))
        marking.join(timeout=1.0)
        assert marking.is_alive(), "the mark must wait for the cancel's lock on the email"
    marking.join(timeout=10)

    assert answer == [False]  # the email is no longer the batch's: its data never goes out
    assert states([email]) == [Status.CANCELLED]
    assert not SendInFlight.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_cancel_that_waited_for_a_mark_leaves_the_email_in_flight():
    """The mark holds the email's row while it commits; a cancel reaching the row then waits, and reads the
    marks after its lock, so it sees this one (a cancel reading them with the lock would cancel an email
    that is going out)."""
    (email,) = claimed(1)

    with transaction.atomic():  # the mark's statement, its commit held back: the moment the race is about
        assert mark(email)
        cancelling, cancelled = _in_thread(lambda: transaction.atomic()(emails_cancel)(
            OutboundEmail.objects.filter(pk=email.pk), why="Cancelled by staff:anna.", now=timezone.now()))
        cancelling.join(timeout=1.0)
        assert cancelling.is_alive(), "the cancel must wait for the mark's lock on the email"
    cancelling.join(timeout=10)

    assert cancelled == [0]
    assert states([email]) == [IN_FLIGHT]


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_the_mark_finds_its_email_by_id_however_rare_statistics_make_claimed_emails_look():
    """Statistics taken while every email was planned make ``status = 'CLAIMED'`` look rarer than one id: the
    mark must still find its email through the primary key, not walk every claimed email of every sender."""
    from cam.outreach.outcomes import _statement_and_params

    mailbox = MailboxFactory(daily_cap=1000, min_gap_seconds=0)
    owner = open_campaign(mailbox)
    for n in range(40):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    outreach_plan()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboundEmail._meta.db_table}")
    emails = outbound_claim(mailbox=mailbox, limit=40, now=timezone.now(), holder=HOLDER)
    sql, params = _statement_and_params(holder=HOLDER, row=None, outcome=None, next_id=emails[-1].pk,
                                        now=timezone.now())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "outbound_emails_pkey" in plan, plan
    assert "outbound_status_created_idx" not in plan, plan
    assert mark(emails[-1])


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_an_email_found_sending_into_one_in_flight_that_recovery_makes_unknown():
    from django.db.migrations.executor import MigrationExecutor

    from cam.outreach.sending import outbound_recover_stuck

    before = [("cam", "0034_outbound_ready_idx")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    campaign = old.get_model("cam", "Campaign").objects.create(name="Spring")
    step = old.get_model("cam", "SequenceStep").objects.create(campaign=campaign, position=1)
    emails = old.get_model("cam", "OutboundEmail").objects
    for n, status in enumerate(["SENDING", "CLAIMED"]):
        lead = old.get_model("cam", "Lead").objects.create(campaign=campaign, email=f"lead{n}@company.example.com")
        emails.create(lead=lead, step=step, campaign=campaign, to_email=lead.email, message_id=f"<{n}@cam.test>",
                      status=status, claimed_by="killed-worker:0a1b")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert email_states(OutboundEmail.objects.order_by("to_email")) == [IN_FLIGHT, Status.CLAIMED]
    assert outbound_recover_stuck() == {"recovered_requeued": 1, "recovered_retry": 0, "recovered_unknown": 1}
