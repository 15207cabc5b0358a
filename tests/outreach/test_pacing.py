"""A mailbox's pace: its warm-up ramp, the jitter on its gap, the hour's share, and the rule that sets it back."""

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from cam.campaigns import campaign_apply_rule
from cam.models import Campaign, Lead, Mailbox, OutboundEmail
from cam.outreach.pacing import (
    gap_ends_at,
    gap_seconds,
    hour_share,
    warmup_allowance,
    warmup_full_on,
    warmup_words,
)
from cam.outreach.planning import _Room, mailbox_pace_wait, mailbox_sent_times, outreach_plan
from cam.outreach.sending import outbound_send_batch
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2 March 2026: the window is 09:00 to 17:00 in Berlin (08:00 to 16:00 UTC), every day.
DAY_ONE = date(2026, 3, 2)


def warming(**fields) -> Mailbox:
    values = {"daily_cap": 50, "min_gap_seconds": 0, "warmup_enabled": True, "warmup_start": 10,
              "warmup_increment": 5, **fields}
    return MailboxFactory(**values)


@pytest.mark.django_db
def test_the_allowance_climbs_from_the_first_days_to_the_cap_and_says_when_it_gets_there():
    mailbox = warming(warmup_started_on=DAY_ONE)
    assert [warmup_allowance(mailbox, DAY_ONE + timedelta(days=n)) for n in range(10)] == [
        10, 15, 20, 25, 30, 35, 40, 45, 50, 50]
    assert warmup_full_on(mailbox, today=DAY_ONE) == date(2026, 3, 10)
    assert warmup_words(mailbox, today=DAY_ONE + timedelta(days=2)) == "20 today of 50; the full 50 from 10 March 2026"
    assert warmup_words(mailbox, today=date(2026, 3, 10)) == "50 today: warmed up, the full daily cap"
    # Not sent yet: day one is the day of its first send.
    fresh = warming()
    assert warmup_allowance(fresh, DAY_ONE) == 10
    assert warmup_words(fresh, today=DAY_ONE).endswith("from 10 March 2026 once it first sends")
    # Warm-up off: the daily cap, every day.
    warm = MailboxFactory(daily_cap=50)
    assert (warmup_allowance(warm, DAY_ONE), warmup_full_on(warm, today=DAY_ONE)) == (50, None)


def test_the_hours_share_divides_what_is_left_over_the_hours_left_and_carries_the_rest():
    assert hour_share(allowance=50, used_before_this_hour=0, hours_left=8) == 7
    assert hour_share(allowance=50, used_before_this_hour=40, hours_left=2) == 5
    assert hour_share(allowance=50, used_before_this_hour=10, hours_left=1) == 40  # the last hour takes the rest
    assert hour_share(allowance=10, used_before_this_hour=10, hours_left=3) == 0


@pytest.mark.django_db
def test_the_gap_varies_within_the_jitter_the_same_for_every_worker(settings):
    settings.AICMO_CAM_SEND_GAP_JITTER_PERCENT = 30
    mailbox = MailboxFactory(min_gap_seconds=100)
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    gaps = []
    for n in range(200):
        mailbox.last_sent_at = start + timedelta(minutes=3 * n)
        gaps.append(gap_seconds(mailbox))
        # Asked again (another worker, another run of the test): the same gap.
        assert gap_ends_at(mailbox) == (
            mailbox.last_sent_at + timedelta(seconds=gaps[-1]))
    assert all(70 <= gap <= 130 for gap in gaps)
    assert min(gaps) < 80 and max(gaps) > 120  # it does vary, over the whole range
    assert len({round(gap, 6) for gap in gaps}) > 150
    settings.AICMO_CAM_SEND_GAP_JITTER_PERCENT = 0
    assert gap_seconds(mailbox) == 100


@pytest.mark.django_db
def test_a_mailbox_sends_its_gap_with_the_jitter_the_planner_expects(settings):
    settings.AICMO_CAM_SEND_GAP_JITTER_PERCENT = 30
    sent = datetime(2026, 3, 2, 9, tzinfo=UTC)
    mailbox = MailboxFactory(min_gap_seconds=100, last_sent_at=sent)
    end = gap_ends_at(mailbox)
    assert end != sent + timedelta(seconds=100)
    assert outbound_send_batch(mailbox_id=mailbox.pk, now=end - timedelta(seconds=1)) == {"waiting_gap": 1}
    assert outbound_send_batch(mailbox_id=mailbox.pk, now=end) != {"waiting_gap": 1}


@pytest.mark.django_db
def test_a_fortnight_of_planning_keeps_to_each_days_allowance_and_spreads_it_over_the_window():
    mailbox = warming(provider=Mailbox.Provider.CONSOLE)
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=9, send_end_hour=17,
                            timezone="Europe/Berlin", daily_cap=10_000)
    owner.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=owner, position=1, subject_template="Hello", body_template="Hi")
    before = datetime(2026, 3, 1, tzinfo=UTC)
    Lead.objects.bulk_create([LeadFactory.build(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=before)
                              for _ in range(600)])

    # Every 20 minutes, from an hour before the window opens to an hour after it closes, for 14 days:
    # plan, then take what was planned as sent at that time (sending itself keeps the real clock; the test
    # below shows its first send starting the ramp).
    for day in range(14):
        for minute in range(0, 10 * 60, 20):
            now = datetime.combine(DAY_ONE + timedelta(days=day), datetime.min.time(), tzinfo=UTC) + timedelta(
                hours=7, minutes=minute + day)  # a minute later each day, as a worker's cycles drift
            if outreach_plan(now=now, campaign=owner).get("planned"):
                OutboundEmail.objects.filter(status=OutboundEmail.Status.PENDING).update(
                    created_at=now, sent_at=now, status=OutboundEmail.Status.SENT)
                Mailbox.objects.filter(pk=mailbox.pk, warmup_started_on=None).update(warmup_started_on=now.date())

    mailbox.refresh_from_db()
    times = [at.astimezone(BERLIN) for at in OutboundEmail.objects.filter(status="SENT")
             .values_list("created_at", flat=True)]
    per_day = Counter(at.date() for at in times)
    days = [DAY_ONE + timedelta(days=n) for n in range(14)]
    # Each day sends its whole allowance and not one more, reaching the cap on the day promised.
    assert [per_day[day] for day in days] == [warmup_allowance(mailbox, day) for day in days]
    assert [per_day[day] for day in days] == [10, 15, 20, 25, 30, 35, 40, 45] + [50] * 6
    full_on = warmup_full_on(mailbox, today=DAY_ONE)
    assert full_on == date(2026, 3, 10) and per_day[full_on] == 50 and per_day[full_on - timedelta(days=1)] < 50
    # Spread over the window: every one of its eight hours sends, none more than the hour's share.
    per_hour = Counter((at.date(), at.hour) for at in times)
    assert {hour for _, hour in per_hour} == set(range(9, 17))
    for (day, hour), count in per_hour.items():
        assert count <= math.ceil(warmup_allowance(mailbox, day) / 8), (day, hour, count)


@pytest.mark.django_db
def test_the_first_send_is_day_one_of_the_warm_up():
    mailbox = warming(provider=Mailbox.Provider.CONSOLE)
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    owner.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=owner, position=1)
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=datetime(2026, 3, 1, tzinfo=UTC))
    outreach_plan()
    assert outbound_send_batch(mailbox_id=mailbox.pk) == {"sent": 1}
    mailbox.refresh_from_db()
    assert mailbox.warmup_started_on == date.today()
    Mailbox.objects.filter(pk=mailbox.pk).update(warmup_started_on=DAY_ONE)
    LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=datetime(2026, 3, 1, tzinfo=UTC))
    outreach_plan()
    assert outbound_send_batch(mailbox_id=mailbox.pk) == {"sent": 1}
    mailbox.refresh_from_db()
    assert mailbox.warmup_started_on == DAY_ONE  # later sends leave day one where it is


@pytest.mark.django_db
def test_a_lead_held_by_the_ramp_is_marked_mailbox_pace():
    mailbox = warming(warmup_start=2, warmup_started_on=DAY_ONE)
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=9, send_end_hour=10,
                            timezone="Europe/Berlin")
    owner.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=owner, position=1)
    now = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    leads = [LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=now) for _ in range(3)]
    assert outreach_plan(now=now) == {"due": 3, "planned": 2, "mailbox_pace": 1}
    assert sorted(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("blocked_reason", flat=True)) == [
        "", "", "mailbox_pace"]


@pytest.mark.django_db
def test_a_rule_that_pauses_a_campaign_restarts_its_mailboxes_ramp_from_half():
    ramping = warming(warmup_started_on=date.today() - timedelta(days=4))  # 30 a day today
    warm = MailboxFactory(daily_cap=40)  # already warm: its warm-up starts again, at 20
    elsewhere = warming(warmup_started_on=date.today() - timedelta(days=4))
    owner = CampaignFactory(status=Campaign.Status.ACTIVE)
    owner.mailboxes.set([ramping, warm])
    CampaignFactory(status=Campaign.Status.ACTIVE).mailboxes.set([elsewhere])

    assert campaign_apply_rule(campaign_id=owner.pk, action="PAUSE", reason="Bounces 9 %")

    today = date.today()
    for mailbox in (ramping, warm, elsewhere):
        mailbox.refresh_from_db()
    assert (warmup_allowance(ramping, today), warmup_allowance(warm, today)) == (15, 20)
    assert warm.warmup_enabled
    assert warmup_allowance(ramping, today + timedelta(days=1)) == 20  # and climbs again from there
    assert warmup_allowance(elsewhere, today) == 30  # another campaign's mailbox is left as it was
    # Already paused: nothing changes, nothing is set back twice.
    assert not campaign_apply_rule(campaign_id=owner.pk, action="PAUSE", reason="Bounces 9 %")
    ramping.refresh_from_db()
    assert warmup_allowance(ramping, today) == 15


@pytest.mark.django_db(transaction=True)
def test_the_migration_leaves_existing_mailboxes_warm_and_new_ones_warming_up():
    executor = MigrationExecutor(connection)
    executor.migrate([("cam", "0022_mailbox_blocked_reasons")])
    old_apps = executor.loader.project_state([("cam", "0022_mailbox_blocked_reasons")]).apps
    old_apps.get_model("cam", "Mailbox").objects.create(name="Old", from_email="old@outreach.test", daily_cap=50)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    old = Mailbox.objects.get(name="Old")
    assert (old.warmup_enabled, old.warmup_started_on) == (False, None)
    assert warmup_allowance(old, DAY_ONE) == 50
    new = Mailbox.objects.create(name="New", from_email="new@outreach.test")
    assert (new.warmup_enabled, new.warmup_start, new.warmup_increment) == (True, 10, 5)


@pytest.mark.django_db
def test_a_campaign_ahead_of_the_servers_clock_does_not_start_a_mailbox_on_its_second_day(settings):
    settings.TIME_ZONE = "UTC"
    mailbox = warming(warmup_started_on=DAY_ONE)  # its first send: 2 March, by the server's (UTC) date
    campaign = CampaignFactory(timezone="Australia/Sydney", send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0,
                               send_end_hour=24)
    now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # still 2 March for the server; 3 March, 10:30 in Sydney
    sent = [datetime(2026, 3, 2, 21, minute, tzinfo=UTC) for minute in range(10)]  # 08:xx in Sydney

    assert mailbox_pace_wait(mailbox, campaign, sent=sent, now=now) == Lead.BlockedReason.MAILBOX_PACE  # 10 of 10
    assert mailbox_pace_wait(mailbox, campaign, sent=sent[:9], now=now) == ""


@pytest.mark.django_db
def test_each_mailboxs_planned_times_come_in_order_and_the_plan_keeps_them_so():
    # mailbox_pace_wait counts today's and this hour's emails by bisection: the times must be in order,
    # whatever order the database returns them in and whatever the plan adds.

    now = timezone.now()
    mailbox = MailboxFactory()
    emails = [OutboundEmailFactory(mailbox=mailbox, status=OutboundEmail.Status.SENT) for _ in range(6)]
    for email, minutes in zip(emails, [30, 5, 50, 1, 20, 10], strict=True):
        OutboundEmail.objects.filter(pk=email.pk).update(created_at=now - timedelta(minutes=minutes))
    times = mailbox_sent_times([mailbox.pk], now=now)[mailbox.pk]
    assert times == sorted(times) and len(times) == 6

    room = _Room()
    room.mailbox_sent[mailbox.pk] = times
    campaign = CampaignFactory()
    for at in (now - timedelta(minutes=15), now):  # a plan's clock earlier than an email already there
        room.take(campaign, mailbox, at)
    assert room.mailbox_sent[mailbox.pk] == sorted(room.mailbox_sent[mailbox.pk])
    assert len(room.mailbox_sent[mailbox.pk]) == 8
