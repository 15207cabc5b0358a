"""Why a campaign is not sending: each blocked reason counted, with one lead and concrete advice, from the
state the planner leaves; when the next email goes out; and each step's figures — in fixed queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.campaigns import campaigns_resume
from cam.diagnose import HeldBack, campaign_diagnosis, days_text, step_performance, step_totals, when_text
from cam.models import Campaign, CampaignRule, InboundEmail, Lead, Mailbox, OutboundEmail
from cam.outreach.planning import outreach_plan
from tests.factories import (
    CampaignFactory,
    CampaignRuleFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    RuleDecisionFactory,
    SequenceStepFactory,
    SuppressionFactory,
    WorkerHeartbeatFactory,
)

pytestmark = pytest.mark.django_db

# Wednesday 4 March 2026, 10:00 UTC = 11:00 in Berlin.
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
Blocked = Lead.BlockedReason


def campaign(*, mailbox: Mailbox | None = None, steps: int = 2, **fields) -> Campaign:
    values = {"send_days": [1, 2, 3, 4, 5], "send_start_hour": 9, "send_end_hour": 17, "timezone": "Europe/Berlin",
              "daily_cap": 100, **fields}
    owner = CampaignFactory(**values)
    for position in range(1, steps + 1):
        SequenceStepFactory(campaign=owner, position=position, subject_template="Hello {{ first_name }}" if
                            position == 1 else "", body_template="Hi {{ first_name|default:'there' }}")
    owner.mailboxes.set([mailbox or MailboxFactory(daily_cap=100, min_gap_seconds=0)])
    return owner


def due(owner: Campaign, count: int = 1, *, minutes_ago: int = 5, **fields) -> list[Lead]:
    return [LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE,
                        next_send_at=NOW - timedelta(minutes=minutes_ago + index), **fields) for index in range(count)]


def only(diagnosis) -> HeldBack:
    (row,) = diagnosis.held_back
    return row


def planned_at(email: OutboundEmail, at: datetime) -> None:
    """The email counts against today's caps from ``at`` (created_at is set on insert)."""
    OutboundEmail.objects.filter(pk=email.pk).update(created_at=at)


# -- each reason -----------------------------------------------------------------------------------------

def test_it_says_when_the_window_opens_for_leads_outside_it():
    owner = campaign()
    first, *_ = due(owner, 3, minutes_ago=30)  # due longest: the example
    outreach_plan(now=SATURDAY)

    diagnosis = campaign_diagnosis(owner, now=SATURDAY)

    assert only(diagnosis) == HeldBack(
        reason="outside_window", label="Outside the send window", count=3, example_id=first.pk,
        example_email=first.email,
        advice="The campaign sends Mon–Fri 09:00–17:00 Europe/Berlin; the window opens Mon 09:00. "
               "Add days or hours under Settings to send sooner.")
    assert diagnosis.next_send_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert (diagnosis.next_send, diagnosis.next_send_why) == ("Mon 09:00 Europe/Berlin", "When the send window opens.")


def test_a_lead_in_its_own_time_zone_is_told_when_its_own_window_opens():
    owner = campaign()
    (lead,) = due(owner, timezone="America/New_York")
    outreach_plan(now=SATURDAY)

    advice = only(campaign_diagnosis(owner, now=SATURDAY)).advice

    # 09:00 in New York (summer time from 8 March) is 14:00 in Berlin.
    assert ("A lead with its own time zone is mailed in that zone's hours: "
            f"{lead.email} (America/New_York) from Mon 14:00 Europe/Berlin.") in advice


def test_a_window_that_has_opened_since_sends_on_the_next_cycle():
    owner = campaign()
    due(owner)
    outreach_plan(now=SATURDAY)

    monday = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert only(campaign_diagnosis(owner, now=monday)).advice == (
        "The send window (Mon–Fri 09:00–17:00 Europe/Berlin) is open now: they go out on the next cycle.")


def test_a_full_mailbox_says_how_many_it_sent_and_when_it_has_room_again():
    mailbox = MailboxFactory(daily_cap=2, min_gap_seconds=0, from_email="sales@outreach.test")
    owner = campaign(mailbox=mailbox)
    # Two emails of another campaign from the same mailbox: its cap counts every campaign's.
    oldest, newer = (OutboundEmailFactory(mailbox=mailbox, status=OutboundEmail.Status.SENT) for _ in range(2))
    planned_at(oldest, NOW - timedelta(hours=15))
    planned_at(newer, NOW - timedelta(hours=1))
    _, longest = due(owner, 2, minutes_ago=10)
    outreach_plan(now=NOW)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    row = only(diagnosis)
    assert (row.reason, row.count, row.example_id) == ("mailbox_cap", 2, longest.pk)
    assert row.advice == ("sales@outreach.test sent 2 of 2 in the last 24 hours, room again today 20:00 Europe/Berlin. "
                          "Raise the mailbox's daily cap under Mailboxes, or add a mailbox under Settings (new leads "
                          "are spread over every mailbox).")
    # The next email waits for that room, which comes after the window closes (17:00): so the next morning.
    assert diagnosis.next_send_at == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert (diagnosis.next_send, diagnosis.next_send_why) == ("tomorrow 09:00 Europe/Berlin",
                                                              "When the send window opens.")
    mailbox_row = diagnosis.capacity[1]
    assert (mailbox_row.used, mailbox_row.cap, mailbox_row.full, mailbox_row.room_at) == (
        2, 2, True, NOW + timedelta(hours=9))


def test_the_capacity_table_shows_a_warming_mailboxs_allowance_today(admin_client, settings):
    settings.TIME_ZONE = "UTC"
    warming = MailboxFactory(daily_cap=50, min_gap_seconds=0, warmup_enabled=True, warmup_start=10,
                             warmup_increment=5, warmup_started_on=NOW.date() - timedelta(days=2),
                             from_email="new@outreach.test")
    warmed = MailboxFactory(daily_cap=50, min_gap_seconds=0, warmup_enabled=False, from_email="old@outreach.test")
    owner = campaign(mailbox=warming)
    owner.mailboxes.add(warmed)

    rows = {row.mailbox_id: row for row in campaign_diagnosis(owner, now=NOW).capacity}

    assert rows[warming.pk].pace_words == "Warming up: 20 today of 50; the full 50 from 10 March 2026."
    assert rows[warmed.pk].pace_words == ""


def test_a_mailbox_gap_says_when_the_next_email_may_go(settings):
    # No jitter: the gap is exactly 2 minutes, whatever the mailbox's id (the jitter's seed).
    settings.AICMO_CAM_SEND_GAP_JITTER_PERCENT = 0
    mailbox = MailboxFactory(min_gap_seconds=120, last_sent_at=NOW - timedelta(seconds=30),
                             from_email="gap@outreach.test")
    owner = campaign(mailbox=mailbox)
    due(owner, 2)
    outreach_plan(now=NOW)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count) == ("mailbox_gap", 2)
    assert row.advice.startswith("gap@outreach.test waits 2 min between sends, the next from today 11:01 "
                                 "Europe/Berlin. A mailbox sends one email per gap")


def test_a_full_campaign_says_how_many_it_sent_and_when_it_has_room_again():
    owner = campaign(daily_cap=1)
    sent = OutboundEmailFactory(lead=LeadFactory(campaign=owner), status=OutboundEmail.Status.SENT)
    planned_at(sent, NOW - timedelta(hours=20))
    due(owner, 3)
    outreach_plan(now=NOW)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    row = only(diagnosis)
    assert (row.reason, row.count) == ("campaign_cap", 3)
    assert row.advice == ("The campaign sent 1 of its 1 a day in the last 24 hours; room again today 15:00 "
                          "Europe/Berlin. Raise the daily cap under Settings to send more.")
    assert (diagnosis.capacity[0].used, diagnosis.capacity[0].cap) == (1, 1)
    assert diagnosis.next_send_at == NOW + timedelta(hours=4)
    assert diagnosis.next_send_why == "When the campaign's daily cap has room again."


def degraded(owner: Campaign) -> None:
    """``owner`` degraded two hours before NOW by a bounce rule at 3.1 % over 400 sends."""
    rule = CampaignRuleFactory(campaign=owner, threshold=3, action=CampaignRule.Action.DEGRADE)
    decision = RuleDecisionFactory(rule=rule, measured_value="3.1", sample_size=400,
                                   status_after=Campaign.Status.DEGRADED)
    type(decision).objects.filter(pk=decision.pk).update(created_at=NOW - timedelta(hours=2))
    Campaign.objects.filter(pk=owner.pk).update(status=Campaign.Status.DEGRADED,
                                                status_changed_at=NOW - timedelta(hours=2))
    owner.refresh_from_db()


def test_a_degraded_campaign_says_which_rule_degraded_it_and_that_it_sends_at_half_its_caps():
    owner = campaign(daily_cap=50)
    degraded(owner)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert diagnosis.degraded == ("Degraded by the rule “Hard-bounce rate above 3 %” at 3.1 % over 400 sends, today "
                                  "09:00: sending at half its caps (25 of 50 a day) until resumed or the rule clears.")
    assert (diagnosis.capacity[0].cap, diagnosis.capacity[0].note) == (
        25, "Degraded: half of 50 a day until resumed or the rule clears.")
    assert diagnosis.capacity[1].cap == 100  # the mailbox's own cap stays: other campaigns share it


def test_a_degraded_campaign_at_its_halved_cap_says_when_it_has_room_and_how_to_get_the_full_cap_back():
    owner = campaign(daily_cap=2)
    degraded(owner)
    sent = OutboundEmailFactory(lead=LeadFactory(campaign=owner), status=OutboundEmail.Status.SENT)
    planned_at(sent, NOW - timedelta(hours=20))
    due(owner, 3)
    outreach_plan(now=NOW)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count) == ("campaign_cap", 3)
    assert row.advice == ("The campaign sent 1 of the 1 a day it may send while degraded (half of 2) in the last 24 "
                          "hours; room again today 15:00 Europe/Berlin. It sends at its full caps once resumed (the "
                          "Resume button) or once the rule that degraded it clears.")


def test_a_resumed_campaign_has_its_full_cap_again():
    owner = campaign(daily_cap=50)
    degraded(owner)
    campaigns_resume(campaign_ids=[owner.pk], reason="Resumed by staff:anna")
    owner.refresh_from_db()

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert (diagnosis.degraded, diagnosis.capacity[0].cap, diagnosis.capacity[0].note) == ("", 50, "")


def test_the_diagnose_tab_shows_the_degraded_line(admin_client):
    owner = campaign(daily_cap=50)
    degraded(owner)

    page = admin_client.get(reverse("admin:cam_campaign_change", args=[owner.pk])).content.decode()

    assert "sending at half its caps (25 of 50 a day) until resumed or the rule clears." in page
    assert "Degraded: half of 50 a day until resumed or the rule clears." in page


def test_a_suppressed_lead_says_what_suppresses_it():
    owner = campaign()
    (lead,) = due(owner, email="gone@acme.test")
    SuppressionFactory(email="", domain="acme.test")
    outreach_plan(now=NOW)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count, row.example_email) == ("suppressed", 1, lead.email)
    assert row.advice.startswith("the domain acme.test is on the suppression list, so it is never mailed. Remove")


def test_a_campaign_paused_by_staff_says_who_paused_it_and_to_resume_it():
    owner = campaign(status=Campaign.Status.PAUSED, status_reason="Paused by staff:anna",
                     status_changed_at=NOW - timedelta(hours=1))
    due(owner, 4)
    outreach_plan(now=NOW)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    row = only(diagnosis)
    assert (row.reason, row.label, row.count) == ("campaign_paused", "Campaign not active", 4)
    assert row.advice == "Paused by staff:anna, today 10:00. Resume it with the Resume button."
    assert (diagnosis.sending, diagnosis.next_send_at) == (False, None)
    assert diagnosis.next_send == "Nothing goes out while the campaign is paused."


def test_a_campaign_paused_by_a_rule_names_the_rule_and_what_it_measured():
    owner = campaign(status=Campaign.Status.PAUSED, status_changed_at=NOW - timedelta(hours=2))
    rule = CampaignRuleFactory(campaign=owner, threshold=4)
    decision = RuleDecisionFactory(rule=rule, measured_value="4.1", sample_size=200)
    type(decision).objects.filter(pk=decision.pk).update(created_at=NOW - timedelta(hours=2))
    due(owner)
    outreach_plan(now=NOW)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert diagnosis.status == "Paused by the rule “Hard-bounce rate above 4 %” at 4.1 % over 200 sends, today 09:00"
    assert only(diagnosis).advice == (
        "Paused by the rule “Hard-bounce rate above 4 %” at 4.1 % over 200 sends, today 09:00. Look at the sends the "
        "rule measured (Outbound emails, Replies) and fix the cause, then Resume it.")


def test_a_rule_decision_older_than_the_last_status_change_is_not_the_reason():
    owner = campaign(status=Campaign.Status.PAUSED, status_reason="Paused by staff:ben",
                     status_changed_at=NOW - timedelta(hours=1))
    decision = RuleDecisionFactory(rule=CampaignRuleFactory(campaign=owner))
    type(decision).objects.filter(pk=decision.pk).update(created_at=NOW - timedelta(days=2))

    assert campaign_diagnosis(owner, now=NOW).status == "Paused by staff:ben, today 10:00"


def test_the_status_says_since_when_and_why():
    owner = campaign(status=Campaign.Status.ACTIVE, status_reason="Resumed by staff:anna",
                     status_changed_at=NOW - timedelta(hours=1))

    assert campaign_diagnosis(owner, now=NOW).status == "Active since today 10:00: Resumed by staff:anna"


def test_a_draft_campaign_is_to_be_activated():
    owner = campaign(status=Campaign.Status.DRAFT, status_reason="")
    due(owner)
    outreach_plan(now=NOW)

    assert only(campaign_diagnosis(owner, now=NOW)).advice == (
        "Draft. Activate it with the Activate button to start sending.")


def test_a_campaign_without_a_mailbox_is_told_to_add_one():
    owner = campaign()
    owner.mailboxes.clear()
    due(owner, 2)
    outreach_plan(now=NOW)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert (only(diagnosis).reason, only(diagnosis).count) == ("no_mailbox", 2)
    assert only(diagnosis).advice == "The campaign has no mailbox: add one under Settings."
    assert diagnosis.next_send == "No email can go out: the campaign has no active mailbox."


def test_a_campaign_with_only_inactive_mailboxes_names_them():
    owner = campaign(mailbox=MailboxFactory(is_active=False, from_email="off@outreach.test"))
    due(owner)
    outreach_plan(now=NOW)

    assert only(campaign_diagnosis(owner, now=NOW)).advice == (
        "None of the campaign's mailboxes is active (off@outreach.test): activate one under Mailboxes, or add "
        "another under Settings.")


def test_a_lead_whose_first_mailbox_was_switched_off_names_it():
    owner = campaign()
    off = MailboxFactory(is_active=False, from_email="first@outreach.test")
    (lead,) = due(owner, mailbox=off, current_step=1)
    outreach_plan(now=NOW)

    assert only(campaign_diagnosis(owner, now=NOW)).advice == (
        f"{lead.email}'s first email went out from first@outreach.test, which is inactive, and its follow-ups keep "
        f"that mailbox: activate it again under Mailboxes.")


def test_a_lead_with_no_step_left_is_told_to_add_one():
    owner = campaign(steps=1)
    (lead,) = due(owner, current_step=1)
    outreach_plan(now=NOW)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count) == ("no_step", 1)
    assert row.advice == (f"{lead.email} has had step 1, and no enabled step follows it (the last enabled is step 1): "
                          f"add or enable one under Sequence, or stop these leads.")


def test_a_campaign_without_steps_is_told_to_write_the_first():
    owner = campaign(steps=0)
    due(owner)
    outreach_plan(now=NOW)

    assert only(campaign_diagnosis(owner, now=NOW)).advice == (
        "The campaign has no steps: write its first email under Sequence.")


def test_a_template_error_shows_the_error_for_the_example_lead():
    owner = campaign()
    owner.steps.filter(position=1).update(body_template="Hi {% if %}")
    (lead,) = due(owner)
    outreach_plan(now=NOW)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count) == ("template_error", 1)
    assert row.advice.startswith(f"Step 1 does not render for {lead.email}: The body template does not compile: ")
    assert row.advice.endswith("Fix it under Sequence; its preview shows it for any lead.")


def held_by_email(owner: Campaign, reason: str, status: str, error: str) -> tuple[Lead, OutboundEmail]:
    (lead,) = due(owner, blocked_reason=reason, current_step=0)
    Lead.objects.filter(pk=lead.pk).update(next_send_at=None)
    email = OutboundEmailFactory(lead=lead, step=owner.steps.get(position=1), mailbox=owner.mailboxes.get(),
                                 status=status, last_error=error)
    return lead, email


@pytest.mark.parametrize(("reason", "status", "said"), [
    ("send_failed", "FAILED", "The provider refused step 1 to {to} from {sender} (550 5.1.1 no such user). Check the "
                              "mailbox's address, login or API key under Mailboxes, then resend the email under "
                              "Outbound emails."),
    ("send_unknown", "UNKNOWN", "It is not known whether this went out: step 1 to {to} from {sender} (Found in flight "
                                "after an interrupted send). Look for it in the mailbox's Sent folder, then Resend or "
                                "Cancel it under Outbound emails."),
    ("cancelled", "CANCELLED", "Staff cancelled step 1 to {to} from {sender} (Cancelled by staff:anna.). Resend it "
                               "under Outbound emails to go on with the sequence, or stop the lead."),
])
def test_an_email_that_stopped_says_what_happened_to_it_and_links_it(reason, status, said):
    owner = campaign()
    error = {"send_failed": "550 5.1.1 no such user", "send_unknown": "Found in flight after an interrupted send",
             "cancelled": "Cancelled by staff:anna."}[reason]
    lead, email = held_by_email(owner, reason, status, error)

    row = only(campaign_diagnosis(owner, now=NOW))

    assert (row.reason, row.count, row.example_id, row.outbound_id) == (reason, 1, lead.pk, email.pk)
    assert row.advice == said.format(to=lead.email, sender=email.mailbox.from_email)


def test_leads_that_are_not_in_sequence_are_not_held_back():
    owner = campaign()
    LeadFactory(campaign=owner, status=Lead.Status.INTERESTED, blocked_reason=Blocked.MAILBOX_CAP)

    assert campaign_diagnosis(owner, now=NOW).held_back == []


def test_reasons_come_most_common_first_each_with_its_own_count_and_example():
    owner = campaign()
    capped = due(owner, 3, blocked_reason=Blocked.CAMPAIGN_CAP)
    (suppressed,) = due(owner, blocked_reason=Blocked.SUPPRESSED)
    windowed = due(owner, 2, blocked_reason=Blocked.OUTSIDE_WINDOW)

    rows = campaign_diagnosis(owner, now=NOW).held_back

    assert [(row.reason, row.count, row.example_id) for row in rows] == [
        ("campaign_cap", 3, capped[-1].pk), ("outside_window", 2, windowed[-1].pk), ("suppressed", 1, suppressed.pk)]
    assert sum(row.count for row in rows) == campaign_diagnosis(owner, now=NOW).held_back_total == 6


# -- what is due, queued, and when the next email goes out ---------------------------------------------------

def test_leads_due_and_not_yet_held_back_are_counted_and_go_now():
    owner = campaign()
    due(owner, 2)
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=NOW + timedelta(days=1))

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert (diagnosis.in_sequence, diagnosis.due_now, diagnosis.held_back) == (3, 2, [])
    assert diagnosis.next_send_at == NOW
    assert (diagnosis.next_send, diagnosis.next_send_why) == ("Now: the next worker cycle sends it.",
                                                              "A lead is due now.")


def test_the_next_email_is_the_earliest_lead_moved_into_the_window():
    owner = campaign()
    # Friday 18:00 in Berlin: after the window; the next opening is Monday 09:00.
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=datetime(2026, 3, 6, 17, 0, tzinfo=UTC))
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC))

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert diagnosis.next_send_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert diagnosis.next_send == "Mon 09:00 Europe/Berlin"


def test_a_lead_due_later_inside_the_window_sets_the_next_send():
    owner = campaign()
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=NOW + timedelta(hours=2))

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert (diagnosis.next_send_at, diagnosis.next_send, diagnosis.next_send_why) == (
        NOW + timedelta(hours=2), "today 13:00 Europe/Berlin", "When the earliest lead's next step is due.")
    assert not diagnosis.next_send_now


def test_leads_waiting_for_a_person_do_not_set_the_next_send():
    owner = campaign()
    held_by_email(owner, Blocked.SEND_FAILED, "FAILED", "refused")
    due(owner, blocked_reason=Blocked.SUPPRESSED)

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert diagnosis.next_send_at is None
    assert diagnosis.next_send == "None until the leads held back are seen to."
    Lead.objects.filter(campaign=owner).update(status=Lead.Status.NURTURE)
    assert campaign_diagnosis(owner, now=NOW).next_send.startswith("No lead is waiting for an email")


def test_queued_emails_go_out_first():
    owner = campaign()
    OutboundEmailFactory(lead=LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE), status="PENDING",
                         next_attempt_at=NOW - timedelta(minutes=1))

    diagnosis = campaign_diagnosis(owner, now=NOW)

    assert (diagnosis.queued, diagnosis.next_send_at, diagnosis.next_send_why) == (
        1, NOW, "Planned emails wait for a sender.")


def test_a_silent_worker_is_reported():
    owner = campaign()
    assert campaign_diagnosis(owner, now=NOW).worker_problem.startswith("No worker has run yet")

    WorkerHeartbeatFactory(last_seen_at=NOW - timedelta(hours=3))
    assert campaign_diagnosis(owner, now=NOW).worker_problem == (
        "No worker has been seen since today 08:00 Europe/Berlin: nothing is planned or sent until one runs again.")

    WorkerHeartbeatFactory(last_seen_at=NOW - timedelta(seconds=30))
    assert campaign_diagnosis(owner, now=NOW).worker_problem == ""


# -- fixed queries ----------------------------------------------------------------------------------------------

def every_reason(owner: Campaign, each: int) -> None:
    """``each`` leads held back for every reason (as stored: the diagnosis reads what the planner wrote)."""
    mailbox = owner.mailboxes.get()
    step = owner.steps.get(position=1)
    for reason in Blocked:
        for lead in due(owner, each, blocked_reason=reason):
            if reason in (Blocked.SEND_FAILED, Blocked.SEND_UNKNOWN, Blocked.CANCELLED):
                OutboundEmailFactory(lead=lead, step=step, mailbox=mailbox, status="FAILED", last_error="refused")
    owner.steps.filter(position=1).update(body_template="{% if %}")
    SuppressionFactory(email=Lead.objects.filter(campaign=owner, blocked_reason=Blocked.SUPPRESSED).first().email)


@pytest.mark.parametrize("each", [1, 9])
def test_the_diagnosis_costs_the_same_queries_for_one_or_nine_leads_of_every_reason(django_assert_num_queries, each):
    owner = campaign(status=Campaign.Status.PAUSED)
    every_reason(owner, each)
    RuleDecisionFactory(rule=CampaignRuleFactory(campaign=owner))
    owner.refresh_from_db()

    # Held back (2: counted and ranked, then the examples), leads by zone (1), queued (1), mailboxes (1),
    # steps (1), caps (2), the rule decision (1), the stopped emails (1), the suppression (1), the worker (1).
    with django_assert_num_queries(12):
        diagnosis = campaign_diagnosis(owner, now=NOW)
    assert diagnosis.held_back_total == len(Blocked) * each


@pytest.mark.parametrize("leads", [1, 100])
def test_the_diagnosis_costs_the_same_queries_for_1_or_100_leads(django_assert_num_queries, leads):
    owner = campaign()
    due(owner, leads, blocked_reason=Blocked.MAILBOX_CAP)

    with django_assert_num_queries(9):
        diagnosis = campaign_diagnosis(owner, now=NOW)
    assert only(diagnosis).count == leads


# -- per-step performance ---------------------------------------------------------------------------------------

def answered(email: OutboundEmail, category: str) -> None:
    now = timezone.now()
    InboundEmailFactory(mailbox=email.mailbox, outbound_email=email, lead=email.lead, category=category,
                        classified_at=now, processed_at=now)


def test_step_performance_counts_each_steps_sends_replies_positives_and_bounces():
    owner = campaign(steps=3)
    first, second = owner.steps.get(position=1), owner.steps.get(position=2)
    emails = [OutboundEmailFactory(lead=LeadFactory(campaign=owner), step=first, status="SENT", sent_at=NOW)
              for _ in range(4)]
    answered(emails[0], InboundEmail.Category.POSITIVE)
    answered(emails[1], InboundEmail.Category.NEGATIVE)
    answered(emails[2], InboundEmail.Category.BOUNCE_HARD)
    OutboundEmailFactory(lead=emails[0].lead, step=second, status="SENT", sent_at=NOW)
    OutboundEmailFactory(lead=emails[1].lead, step=second, status="PENDING")  # not sent: not counted

    figures = step_performance(owner)

    assert [(row.position, row.sent, row.replies, row.positive, row.bounced) for row in figures] == [
        (1, 4, 2, 1, 1), (2, 1, 0, 0, 0), (3, 0, 0, 0, 0)]
    assert (figures[0].reply_rate, figures[0].positive_rate, figures[0].bounce_rate) == (50.0, 25.0, 25.0)
    assert figures[2].reply_rate is None
    total = step_totals(figures)
    assert (total.sent, total.replies, total.positive, total.bounced) == (5, 2, 1, 1)


def test_a_bounce_held_for_a_person_is_not_counted():
    owner = campaign(steps=1)
    email = OutboundEmailFactory(lead=LeadFactory(campaign=owner), step=owner.steps.get(), status="SENT", sent_at=NOW)
    InboundEmailFactory(mailbox=email.mailbox, outbound_email=email, category=InboundEmail.Category.BOUNCE_HARD,
                        confirmation=InboundEmail.Confirmation.NEEDED)

    assert step_performance(owner)[0].bounced == 0


@pytest.mark.parametrize("emails", [1, 60])
def test_step_performance_costs_two_queries_however_many_emails(django_assert_num_queries, emails):
    owner = campaign(steps=2)
    step = owner.steps.get(position=1)
    for _ in range(emails):
        OutboundEmailFactory(lead=LeadFactory(campaign=owner), step=step, status="SENT", sent_at=NOW)

    with django_assert_num_queries(2):
        figures = step_performance(owner)
    assert figures[0].sent == emails


# -- words ------------------------------------------------------------------------------------------------------

def test_times_and_days_read_as_people_say_them():
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    assert when_text(NOW + timedelta(hours=2), zone=berlin, now=NOW) == "today 13:00"
    assert when_text(NOW + timedelta(days=1), zone=berlin, now=NOW) == "tomorrow 11:00"
    assert when_text(NOW + timedelta(days=5), zone=berlin, now=NOW) == "Mon 11:00"
    assert when_text(NOW + timedelta(days=30), zone=berlin, now=NOW) == "3 Apr 12:00"
    assert when_text(NOW - timedelta(days=400), zone=berlin, now=NOW) == "28 Jan 2025 11:00"
    assert days_text([1, 2, 3, 4, 5]) == "Mon–Fri"
    assert days_text([1, 3, 5, 6]) == "Mon, Wed, Fri, Sat"
    assert days_text(range(1, 8)) == "every day"
