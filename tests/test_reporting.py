"""The dashboard's live figures: what each counts, in which period, against which threshold, at what cost."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cam import reporting
from cam.models import InboundEmail, Lead, OutboundEmail, ProviderEvent
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outreach_send
from tests.decisions.helpers import answer, earlier_today, provider_event, sends
from tests.factories import (
    CampaignFactory,
    CampaignRuleFactory,
    LeadFactory,
    MailboxFactory,
    SequenceStepFactory,
)

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Status = Lead.Status


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def won(lead: Lead, status: str = Status.WON, when: datetime | None = None) -> Lead:
    Lead.objects.filter(pk=lead.pk).update(status=status, status_changed_at=when or timezone.now())
    return lead


# -- kpis -----------------------------------------------------------------------------------------

def test_it_counts_a_send_right_after_it_happens():
    mailbox = MailboxFactory(daily_cap=1000, min_gap_seconds=0)
    campaign = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=campaign, position=1)
    LeadFactory.create_batch(27, campaign=campaign, status=Status.IN_SEQUENCE,
                             next_send_at=timezone.now() - timedelta(minutes=1))
    assert reporting.kpis("today")["sent"] == 0

    outreach_plan()
    assert outreach_send(inline=True)["sent"] == 27

    # No metrics step ran in between: the figures are read from the emails themselves.
    assert reporting.kpis("today")["sent"] == 27
    assert reporting.kpis("today", campaign=campaign)["sent"] == 27
    assert reporting.daily_series()[-1]["sent"] == 27
    [box] = reporting.mailbox_sends_today()
    assert (box["sent_today"], box["cap_used"], box["daily_cap"], box["cap_percent"]) == (27, 27, 1000, 2.7)
    [funnel] = reporting.campaign_funnels()
    assert (funnel["harvested"], funnel["qualified"], funnel["contacted"], funnel["replied"]) == (27, 27, 27, 0)


def test_it_counts_the_periods_outcomes_each_email_once():
    campaign = CampaignFactory()
    emails = sends(campaign, 10, at=earlier_today(timedelta(minutes=30)))
    answer(emails[0], Category.POSITIVE)
    answer(emails[1], Category.NEGATIVE)
    answer(emails[2], Category.QUESTION)
    answer(emails[3], Category.OUT_OF_OFFICE)  # a machine's answer, not a reply
    answer(emails[4], Category.BOUNCE_HARD)
    answer(emails[4], Category.BOUNCE_HARD)  # the same email's second notice
    provider_event(emails[4], "bounced")  # and its provider event: still one bounced email
    provider_event(emails[5], "bounced")  # reported by the provider alone
    provider_event(emails[6], "delivered")
    held = answer(emails[7], Category.BOUNCE_HARD)  # proves nothing until a person confirms it
    InboundEmail.objects.filter(pk=held.pk).update(confirmation=InboundEmail.Confirmation.NEEDED)
    answer(emails[8], Category.COMPLAINT)
    won(emails[0].lead)
    won(emails[2].lead, Status.MEETING_BOOKED)
    won(emails[1].lead, Status.MEETING_BOOKED, when=timezone.now() - timedelta(days=3))  # booked before today
    won(emails[9].lead, Status.UNSUBSCRIBED)
    # The same person, unsubscribed from a second campaign by the same request: one unsubscribe.
    won(LeadFactory(email=emails[9].lead.email), Status.UNSUBSCRIBED)

    figures = reporting.kpis("today")

    assert {key: figures[key] for key in ("sent", "replies", "positive", "reply_rate", "positive_rate",
                                          "hard_bounces", "complaints", "unsubscribes", "meetings", "won")} == {
        "sent": 10, "replies": 3, "positive": 1, "reply_rate": 30.0, "positive_rate": 10.0,
        "hard_bounces": 2, "complaints": 1, "unsubscribes": 1, "meetings": 1, "won": 1}
    assert reporting.kpis("7d")["meetings"] == 2
    assert figures["hard_bounce_rate"] == {"value": 20.0, "threshold": 5.0, "level": "over"}
    assert figures["complaint_rate"] == {"value": 10.0, "threshold": 0.3, "level": "over"}
    assert (figures["period"], figures["label"]) == ("today", "Today")


def test_nothing_sent_yet_has_no_rates():
    figures = reporting.kpis("30d")
    assert (figures["sent"], figures["reply_rate"], figures["positive_rate"]) == (0, None, None)
    assert figures["hard_bounce_rate"] == {"value": None, "threshold": 5.0, "level": "ok"}


def test_periods_are_calendar_days_from_local_midnight(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    now = at("2026-03-10T10:00")  # 11:00 in Berlin
    campaign = CampaignFactory()
    sends(campaign, 1, at=at("2026-03-09T23:15"))  # 00:15 on the 10th in Berlin: today
    sends(campaign, 2, at=at("2026-03-09T22:45"))  # 23:45 on the 9th: yesterday
    sends(campaign, 4, at=at("2026-03-04T00:30"))  # the 4th, the first of the last 7 days
    sends(campaign, 8, at=at("2026-03-03T22:30"))  # 23:30 on the 3rd: 8 days ago
    sends(campaign, 16, at=at("2026-02-08T23:30"))  # 00:30 on 9 February: the first of the last 30 days

    assert reporting.period_start("today", now=now) == datetime(2026, 3, 9, 23, 0, tzinfo=UTC)
    assert [reporting.kpis(period, now=now)["sent"] for period in ("today", "7d", "30d")] == [1, 7, 31]
    with pytest.raises(ValueError, match="Unknown period"):
        reporting.kpis("year", now=now)


def test_a_day_that_changes_to_summer_time_starts_at_midnight(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    # Clocks go forward at 02:00 on 29 March 2026: that day is 23 hours long.
    assert reporting.period_start("7d", now=at("2026-04-02T12:00")) == at("2026-03-26T23:00")
    assert reporting.period_start("today", now=at("2026-03-29T12:00")) == at("2026-03-28T23:00")
    assert reporting.period_start("today", now=at("2026-03-30T12:00")) == at("2026-03-29T22:00")


# -- thresholds and levels ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "threshold", "expected"), [
    (None, "5", "ok"), (0.0, "5", "ok"), (3.99, "5", "ok"), (4.0, "5", "near"), (5.0, "5", "near"),
    (5.01, "5", "over"), (0.0, "0", "ok"), (0.1, "0", "over"), (0.24, "0.3", "near"),
])
def test_a_rate_is_ok_under_80_percent_of_its_threshold_near_up_to_it_and_over_beyond(value, threshold, expected):
    assert reporting.level(value, Decimal(threshold)) == expected


def test_thresholds_are_the_lowest_enabled_rule_or_the_default():
    assert reporting.thresholds() == {"hard_bounce_rate": Decimal("5"), "complaint_rate": Decimal("0.3")}

    strict = CampaignFactory(max_hard_bounce_rate=2)
    lenient = CampaignFactory()
    CampaignRuleFactory(campaign=strict, threshold=3)
    CampaignRuleFactory(campaign=lenient, threshold=6)
    CampaignRuleFactory(campaign=lenient, threshold=1, enabled=False)
    CampaignRuleFactory(campaign=lenient, threshold=Decimal("0.5"), comparison="below")
    CampaignRuleFactory(campaign=lenient, metric="complaint_rate", threshold=Decimal("0.2"))

    assert reporting.thresholds() == {"hard_bounce_rate": Decimal("3"), "complaint_rate": Decimal("0.2")}
    assert reporting.thresholds(lenient) == {"hard_bounce_rate": Decimal("6"), "complaint_rate": Decimal("0.2")}
    # No complaint rule of its own: the default rule's threshold, read from the campaign's guard rail.
    assert reporting.thresholds(strict) == {"hard_bounce_rate": Decimal("3"), "complaint_rate": Decimal("0.3")}
    no_rules = CampaignFactory(max_hard_bounce_rate=Decimal("2.5"))
    assert reporting.thresholds(no_rules)["hard_bounce_rate"] == Decimal("2.5")


def test_the_bounce_rate_level_follows_the_threshold_that_guards_it():
    campaign = CampaignFactory()
    emails = sends(campaign, 100)
    for email in emails[:4]:
        answer(email, Category.BOUNCE_HARD)
    assert reporting.kpis("7d")["hard_bounce_rate"] == {"value": 4.0, "threshold": 5.0, "level": "near"}
    CampaignRuleFactory(campaign=campaign, threshold=10)
    assert reporting.kpis("7d")["hard_bounce_rate"]["level"] == "ok"
    CampaignRuleFactory(campaign=CampaignFactory(), threshold=3)
    assert reporting.kpis("7d")["hard_bounce_rate"] == {"value": 4.0, "threshold": 3.0, "level": "over"}
    assert reporting.kpis("7d", campaign=campaign)["hard_bounce_rate"]["threshold"] == 10.0


# -- the daily series -----------------------------------------------------------------------------

def test_the_daily_series_has_every_day_oldest_first_with_empty_days_as_zero(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    now = at("2026-03-10T10:00")
    campaign = CampaignFactory()
    today = sends(campaign, 3, at=at("2026-03-09T23:30"))  # after midnight in Berlin
    sends(campaign, 2, at=at("2026-03-08T12:00"))
    sends(campaign, 5, at=at("2026-01-01T12:00"))  # before the 30 days
    answer(today[0], Category.POSITIVE)
    answer(today[1], Category.NEGATIVE)
    answer(today[2], Category.BOUNCE_HARD)
    provider_event(sends(campaign, 1, at=at("2026-03-08T12:00"))[0], "bounced")
    InboundEmail.objects.update(created_at=at("2026-03-10T09:00"))
    ProviderEvent.objects.update(received_at=at("2026-03-10T09:30"))

    series = reporting.daily_series(now=now)

    assert len(series) == 30
    assert (series[0]["day"], series[-1]["day"]) == (date(2026, 2, 9), date(2026, 3, 10))
    by_day = {entry["day"]: entry for entry in series}
    assert by_day[date(2026, 3, 10)] == {"day": date(2026, 3, 10), "sent": 3, "replies": 2, "positive": 1,
                                         "bounces": 2}  # the provider's event arrived today too
    assert by_day[date(2026, 3, 8)]["sent"] == 3
    assert by_day[date(2026, 3, 9)] == {"day": date(2026, 3, 9), "sent": 0, "replies": 0, "positive": 0,
                                        "bounces": 0}
    assert sum(entry["sent"] for entry in series) == 6
    assert [entry["day"] for entry in reporting.daily_series(3, now=now)] == [
        date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]


# -- funnels, categories, mailboxes --------------------------------------------------------------

def test_each_campaigns_funnel_counts_its_leads_at_every_stage_they_reached():
    campaign = CampaignFactory(name="Nordic CFOs")
    contacted = {"last_contacted_at": timezone.now()}
    replied = {**contacted, "replied_at": timezone.now()}
    LeadFactory(campaign=campaign, status=Status.NEW)
    LeadFactory(campaign=campaign, status=Status.DISQUALIFIED)
    LeadFactory(campaign=campaign, status=Status.QUALIFIED)
    LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE)
    LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, **contacted)
    LeadFactory(campaign=campaign, status=Status.BOUNCED, **contacted)
    LeadFactory(campaign=campaign, status=Status.NOT_INTERESTED, **replied)
    LeadFactory(campaign=campaign, status=Status.INTERESTED, **replied)
    LeadFactory(campaign=campaign, status=Status.MEETING_BOOKED, **replied)
    LeadFactory(campaign=campaign, status=Status.WON, **replied)
    LeadFactory(campaign=campaign, status=Status.LOST, **replied)
    empty = CampaignFactory(name="Empty one")

    assert reporting.campaign_funnels() == [
        {"campaign_id": empty.pk, "name": "Empty one", "status": "ACTIVE", "harvested": 0,
         "qualified": 0, "contacted": 0, "replied": 0, "positive": 0, "won": 0},
        {"campaign_id": campaign.pk, "name": "Nordic CFOs", "status": "ACTIVE", "harvested": 11, "qualified": 9,
         "contacted": 7, "replied": 5, "positive": 4, "won": 1},
    ]


def test_funnels_come_sending_campaigns_first_newest_first_and_can_be_limited():
    old = CampaignFactory(name="Old active")
    done = CampaignFactory(name="Done", status="COMPLETED")
    CampaignFactory(name="Paused", status="PAUSED")
    CampaignFactory(name="New active")
    CampaignFactory(name="Degraded", status="DEGRADED")
    LeadFactory.create_batch(3, campaign=old)
    LeadFactory(campaign=done)

    assert [f["name"] for f in reporting.campaign_funnels()] == ["Degraded", "New active", "Old active", "Paused",
                                                                 "Done"]
    assert [(f["name"], f["harvested"]) for f in reporting.campaign_funnels(limit=3)] == [
        ("Degraded", 0), ("New active", 0), ("Old active", 3)]


def test_replies_are_counted_by_category_most_first():
    campaign = CampaignFactory()
    emails = sends(campaign, 6)
    for email, category in zip(emails, ["POSITIVE", "POSITIVE", "NEGATIVE", "OUT_OF_OFFICE", "POSITIVE", ""],
                               strict=True):
        answer(email, category)
    old = answer(sends(campaign, 1)[0], Category.NEGATIVE)
    InboundEmail.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert reporting.replies_by_category("30d") == [
        {"category": "POSITIVE", "label": "Positive", "count": 3},
        {"category": "", "label": "Not classified yet", "count": 1},
        {"category": "NEGATIVE", "label": "Negative", "count": 1},
        {"category": "OUT_OF_OFFICE", "label": "Out of office", "count": 1},
    ]


def test_a_mailboxs_cap_is_measured_on_the_last_24_hours_as_the_planner_counts_it(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    now = timezone.now()
    mailbox = MailboxFactory(name="Sales desk", daily_cap=40)
    quiet = MailboxFactory(name="Another desk", is_active=False)
    campaign = CampaignFactory()
    sends(campaign, 6, mailbox=mailbox, at=earlier_today(timedelta(minutes=5), now=now))
    sends(campaign, 2, mailbox=mailbox, status=OutboundEmail.Status.PENDING)  # planned: counts against the cap
    sends(campaign, 1, mailbox=mailbox, status=OutboundEmail.Status.FAILED)  # refused: does not
    yesterday = sends(campaign, 3, mailbox=mailbox, at=reporting.period_start("today") - timedelta(hours=1))
    OutboundEmail.objects.filter(pk__in=[e.pk for e in yesterday]).update(created_at=now - timedelta(hours=30))

    assert reporting.mailbox_sends_today() == [
        {"mailbox_id": quiet.pk, "name": "Another desk", "is_active": False, "sent_today": 0, "cap_used": 0,
         "daily_cap": 50, "cap_percent": 0.0},
        {"mailbox_id": mailbox.pk, "name": "Sales desk", "is_active": True, "sent_today": 6, "cap_used": 8,
         "daily_cap": 40, "cap_percent": 20.0},
    ]


# -- one campaign ---------------------------------------------------------------------------------

def test_every_figure_can_be_narrowed_to_one_campaign():
    ours, theirs = CampaignFactory(name="Ours"), CampaignFactory(name="Theirs")
    our_box, their_box = MailboxFactory(name="Our box"), MailboxFactory(name="Their box")
    ours.mailboxes.set([our_box])
    theirs.mailboxes.set([their_box])
    mine = sends(ours, 4, mailbox=our_box)
    other = sends(theirs, 6, mailbox=their_box)
    answer(mine[0], Category.POSITIVE)
    answer(other[0], Category.NEGATIVE)
    answer(other[1], Category.BOUNCE_HARD)
    provider_event(other[2], "complained")
    won(other[3].lead)

    figures = reporting.kpis("7d", campaign=ours)
    assert (figures["sent"], figures["replies"], figures["positive"], figures["hard_bounces"],
            figures["complaints"], figures["won"]) == (4, 1, 1, 0, 0, 0)
    everything = reporting.kpis("7d")
    assert (everything["sent"], everything["replies"], everything["hard_bounces"], everything["complaints"],
            everything["won"]) == (10, 2, 1, 1, 1)
    assert sum(day["sent"] for day in reporting.daily_series(campaign=ours)) == 4
    assert sum(day["bounces"] for day in reporting.daily_series(campaign=ours)) == 0
    assert [row["name"] for row in reporting.campaign_funnels(campaign=ours)] == ["Ours"]
    assert reporting.replies_by_category("7d", campaign=ours) == [
        {"category": "POSITIVE", "label": "Positive", "count": 1}]
    assert [row["name"] for row in reporting.mailbox_sends_today(campaign=ours)] == ["Our box"]


# -- cost -----------------------------------------------------------------------------------------

# The dashboard reads the first three through ``overview`` (five queries for all three).
QUERIES = {"kpis": 5, "daily_series": 3, "replies_by_category": 1, "overview": 5, "campaign_funnels": 2,
           "mailbox_sends_today": 2}


def every_figure():
    reporting.kpis("30d")
    reporting.daily_series()
    reporting.overview("30d")
    reporting.campaign_funnels()
    reporting.replies_by_category("30d")
    reporting.mailbox_sends_today()


def world(campaigns: int, emails: int) -> None:
    for _ in range(campaigns):
        campaign = CampaignFactory()
        CampaignRuleFactory(campaign=campaign)
        box = MailboxFactory()
        campaign.mailboxes.set([box])
        batch = sends(campaign, emails, mailbox=box)
        answer(batch[0], Category.POSITIVE)
        answer(batch[-1], Category.BOUNCE_HARD)
        provider_event(batch[-1], "bounced")
        won(batch[0].lead)


@pytest.mark.parametrize(("campaigns", "emails"), [(1, 1), (5, 20)])
def test_each_figure_costs_the_same_queries_however_much_there_is(django_assert_num_queries, campaigns, emails):
    world(campaigns, emails)
    with django_assert_num_queries(sum(QUERIES.values())):
        every_figure()
    for name, count in QUERIES.items():
        with django_assert_num_queries(count):
            getattr(reporting, name)(*(["7d"] if name in ("kpis", "replies_by_category", "overview") else []))


def test_the_overview_reads_the_same_figures_as_each_function_and_they_agree():
    campaign = CampaignFactory()
    emails = sends(campaign, 12, at=timezone.now() - timedelta(days=3))
    sends(campaign, 5, at=timezone.now() - timedelta(days=20))
    answer(emails[0], Category.POSITIVE)
    answer(emails[1], Category.OUT_OF_OFFICE)
    answer(emails[2], Category.BOUNCE_HARD)
    provider_event(emails[3], "complained")

    read = reporting.overview("7d")

    assert read["kpis"] == reporting.kpis("7d")
    assert read["series"] == reporting.daily_series()
    assert read["categories"] == reporting.replies_by_category("7d")
    # The cards are the sums of the chart's last seven bars.
    assert read["kpis"]["sent"] == sum(day["sent"] for day in read["series"][-7:]) == 12
    assert reporting.overview("30d")["kpis"]["sent"] == 17
    assert (read["kpis"]["hard_bounces"], read["kpis"]["complaints"]) == (1, 1)
    with pytest.raises(ValueError, match="does not cover"):
        reporting.overview("30d", days=7)


def test_past_days_sends_are_read_once_then_only_todays(django_assert_num_queries):
    campaign = CampaignFactory()
    sends(campaign, 4, at=timezone.now() - timedelta(days=2))
    assert reporting.kpis("7d")["sent"] == 4

    sends(campaign, 3, at=earlier_today(timedelta(hours=1)))  # today: always read
    with CaptureQueriesContext(connection) as queries:
        assert reporting.kpis("7d")["sent"] == 7
    since = str(reporting.period_start("today").astimezone(UTC).replace(tzinfo=None))
    [grouped] = [query["sql"] for query in queries.captured_queries if "GROUP BY" in query["sql"]
                 and "outbound_emails" in query["sql"]]
    assert since in grouped  # the grouped count started at today's midnight, not seven days back

    # A send recorded for a past day after it was read is the newest before today: read again.
    sends(campaign, 2, at=timezone.now() - timedelta(days=1))
    assert reporting.kpis("7d")["sent"] == 9
    assert reporting.kpis("7d", campaign=CampaignFactory())["sent"] == 0
