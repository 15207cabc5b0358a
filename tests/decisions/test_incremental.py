"""A cycle measures again only what changed: the rules of the campaigns whose sends or outcomes changed, the
metric days and snapshots of the campaigns and mailboxes concerned. Step by step on a fake clock — replies,
bounces and complaints arriving for old emails, a rule edited, the clock passing a day boundary and the rules'
age cutoffs, a campaign paused and resumed — what the incremental path keeps and returns is what measuring
everything afresh gives."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from cam.decisions import (
    METRICS_WINDOW_DAYS,
    _rules_measured,
    metric_days_refresh,
    metrics_compute,
    rules_evaluate,
    rules_measure,
    running_rules,
)
from cam.models import Campaign, CampaignRule, InboundEmail, MetricSnapshot, OutboundEmail, RuleDecision
from cam.models.decisions import Scope, snapshot_computed_at
from tests.decisions.helpers import answer, provider_event, sends
from tests.decisions.test_metric_days import assert_equal_to_counting_every_email
from tests.factories import CampaignFactory, CampaignRuleFactory, MailboxFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Metric = CampaignRule.Metric
OUTCOMES = [Category.BOUNCE_HARD, Category.COMPLAINT, Category.POSITIVE, Category.NEGATIVE, Category.UNSUBSCRIBE,
            Category.OUT_OF_OFFICE, Category.BOUNCE_SOFT, Category.QUESTION]


class Clock:
    """``django.utils.timezone.now`` made to say what the test says: every stamp (a reply's ``classified_at``,
    a provider event's ``received_at``, the cursors) follows it."""

    def __init__(self, monkeypatch, at: datetime) -> None:
        self.at = at
        monkeypatch.setattr(timezone, "now", lambda: self.at)

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def clock(monkeypatch):
    # Just before a UTC midnight, so that the steps below pass one.
    return Clock(monkeypatch, datetime(2026, 12, 3, 23, 58, 50, tzinfo=UTC))


def floors() -> dict[int, datetime]:
    return {decision.rule_id: decision.evidence_until for decision in RuleDecision.objects.order_by("created_at")}


def assert_rules_as_if_measured_afresh(now: datetime) -> None:
    rules = running_rules()
    kept = _rules_measured(rules, rules, floors(), now)
    assert kept == rules_measure(running_rules(), floors=floors(), now=now)


def assert_metrics_as_if_counted_afresh(now: datetime) -> None:
    metrics = metrics_compute(now=now)
    assert_equal_to_counting_every_email(metrics, now=now)
    for name, scope in (("campaigns", Scope.CAMPAIGN), ("mailboxes", Scope.MAILBOX)):
        for subject_id, periods in metrics[name].items():
            snapshot = MetricSnapshot.objects.annotate(at=snapshot_computed_at("computed_at")).get(
                key=f"{scope}:{subject_id}")
            assert (snapshot.window, snapshot.all_time, snapshot.at) == (periods["window"], periods["all_time"], now)
    assert metrics == metrics_compute(now=now, full=True)


def history(rng: random.Random, now: datetime):
    """Three campaigns over three mailboxes, each with rules of every metric (one per mailbox, one on old sends
    only); sends over the last 20 days, many around the window's first day and the five-day age cutoff, with
    outcomes."""
    campaigns = [CampaignFactory() for _ in range(3)]
    mailboxes = [MailboxFactory() for _ in range(3)]
    emails = []
    for campaign in campaigns:
        for metric in Metric.values:
            CampaignRuleFactory(campaign=campaign, metric=metric, threshold=99, window=rng.choice([10, 30, 200]),
                                min_sample=5)
        CampaignRuleFactory(campaign=campaign, metric=Metric.POSITIVE_REPLY_RATE, threshold=99, window=20,
                            min_sample=5, min_age_days=5)
        CampaignRuleFactory(campaign=campaign, metric=Metric.HARD_BOUNCE_RATE, threshold=99, window=15,
                            min_sample=5, scope=Scope.MAILBOX)
    for _ in range(30):
        days = rng.choice([rng.uniform(0, 20), rng.uniform(6.99, 7.01), rng.uniform(4.99, 5.01)])
        emails += sends(rng.choice(campaigns), rng.randint(1, 4), mailbox=rng.choice(mailboxes),
                        at=now - timedelta(days=days))
    for email in rng.sample(emails, 25):
        answer(email, rng.choice(OUTCOMES))
    for campaign in campaigns:  # five days old in 50 minutes
        emails += sends(campaign, 2, mailbox=rng.choice(mailboxes), at=now - timedelta(days=5, minutes=-50))
    return campaigns, mailboxes, emails


def assert_both(now: datetime) -> None:
    assert_rules_as_if_measured_afresh(now)
    assert_metrics_as_if_counted_afresh(now)


@pytest.mark.parametrize("seed", [1, 2])
def test_step_by_step_the_kept_measurements_and_counts_are_what_measuring_afresh_gives(clock, seed):
    rng = random.Random(seed)
    campaigns, mailboxes, emails = history(rng, clock.at)
    assert_both(clock.at)  # the first look: everything measured

    clock.advance(seconds=30)
    assert_both(clock.at)  # nothing changed

    clock.advance(seconds=30)
    for email in rng.sample(emails, 4):  # a reply, a bounce, a complaint… for old emails, read now
        answer(email, rng.choice(OUTCOMES))
    assert_both(clock.at)

    clock.advance(seconds=40)  # past UTC midnight: the window's first day and the age cutoffs move on
    assert clock.at.date() == datetime(2026, 12, 4).date()
    assert_both(clock.at)

    clock.advance(minutes=1)
    sends(campaigns[0], 3, mailbox=mailboxes[1], at=clock.at)  # sent now
    provider_event(rng.choice(emails), "bounced")
    provider_event(rng.choice(emails), "complained")
    OutboundEmail.objects.filter(pk=rng.choice(emails).pk).update(unsubscribed_at=clock.at)  # the footer's link
    assert_both(clock.at)

    clock.advance(minutes=1)
    held = answer(rng.choice(emails), Category.BOUNCE_HARD)
    InboundEmail.objects.filter(pk=held.pk).update(confirmation=InboundEmail.Confirmation.NEEDED)
    assert_both(clock.at)
    clock.advance(minutes=1)
    InboundEmail.objects.filter(pk=held.pk).update(confirmation=InboundEmail.Confirmation.CONFIRMED,
                                                   confirmation_at=clock.at)  # a person confirms it
    reply = InboundEmail.objects.filter(category=Category.POSITIVE).first()
    if reply is not None:  # a person reclassifies a reply
        InboundEmail.objects.filter(pk=reply.pk).update(category=Category.NEGATIVE, classified_at=clock.at)
    assert_both(clock.at)

    # A rule edited: its window, its age, its metric.
    rule = CampaignRule.objects.filter(campaign=campaigns[1], scope=Scope.CAMPAIGN).first()
    CampaignRule.objects.filter(pk=rule.pk).update(window=7)
    clock.advance(minutes=1)
    assert_both(clock.at)
    CampaignRule.objects.filter(pk=rule.pk).update(min_age_days=2, metric=Metric.REPLY_RATE)
    clock.advance(minutes=1)
    assert_both(clock.at)

    # Nothing else happens while sends grow five days old (50 minutes after the first look; every rule is
    # measured afresh once an hour anyway).
    for minutes in (20, 20, 8):
        clock.advance(minutes=minutes)
        assert_both(clock.at)

    # Hours on: sends grow past the age cutoff, others leave the window.
    for _ in range(4):
        clock.advance(hours=5)
        assert_both(clock.at)


def test_a_paused_campaign_resumed_is_measured_on_what_happened_while_it_was_paused(clock):
    rng = random.Random(3)
    campaigns, _, emails = history(rng, clock.at)
    assert_both(clock.at)
    Campaign.objects.filter(pk=campaigns[0].pk).update(status=Campaign.Status.PAUSED)
    clock.advance(minutes=1)
    assert_both(clock.at)
    for email in [email for email in emails if email.campaign_id == campaigns[0].pk][:5]:
        answer(email, Category.BOUNCE_HARD)
    clock.advance(days=2)  # its positive-reply rule's cutoff moved past sends too
    assert_both(clock.at)
    Campaign.objects.filter(pk=campaigns[0].pk).update(status=Campaign.Status.ACTIVE)
    clock.advance(minutes=1)
    assert_both(clock.at)

    CampaignRule.objects.filter(campaign=campaigns[1]).update(enabled=False)  # disabled, then enabled again
    clock.advance(minutes=1)
    assert_both(clock.at)
    clock.advance(days=1)
    CampaignRule.objects.filter(campaign=campaigns[1]).update(enabled=True)
    assert_both(clock.at)


def test_days_brought_up_to_date_on_their_own_leave_the_snapshots_right(clock):
    campaign = CampaignFactory()
    emails = sends(campaign, 20, at=clock.at - timedelta(days=3))
    assert_metrics_as_if_counted_afresh(clock.at)
    clock.advance(minutes=1)
    for email in emails[:5]:
        answer(email, Category.BOUNCE_HARD)
    metric_days_refresh()  # sees the bounces, and a quarter of an hour on the next metrics step will not
    clock.advance(minutes=20)
    metric_days_refresh()
    clock.advance(minutes=1)
    assert_metrics_as_if_counted_afresh(clock.at)


def test_a_clock_gone_back_measures_everything_again(clock):
    rng = random.Random(4)
    history(rng, clock.at)
    assert_both(clock.at)
    clock.advance(days=1)
    assert_both(clock.at)
    clock.advance(days=-1, minutes=1)
    assert_both(clock.at)


def test_bounces_arriving_for_old_sends_pause_the_campaign_as_soon_as_measuring_afresh_would(clock):
    campaign = CampaignFactory()
    CampaignRuleFactory(campaign=campaign, metric=Metric.HARD_BOUNCE_RATE, threshold=5, window=100, min_sample=20)
    CampaignRuleFactory(campaign=campaign, metric=Metric.COMPLAINT_RATE, threshold=2, window=100, min_sample=20,
                        action=CampaignRule.Action.DEGRADE)
    emails = sends(campaign, 100, at=clock.at - timedelta(days=10))
    for email in emails[:5]:
        answer(email, Category.BOUNCE_HARD)
    assert rules_evaluate() == {"evaluated": 2, "below_sample": 0, "fired": 0, "paused": 0, "degraded": 0,
                                "cleared": 0}
    clock.advance(minutes=1)
    for email in emails[10:13]:  # complaints about ten-day-old sends, read now: 3 %
        answer(email, Category.COMPLAINT)
    assert rules_evaluate()["degraded"] == 1
    clock.advance(minutes=1)
    answer(emails[20], Category.BOUNCE_HARD)  # a sixth bounce: 6 %
    assert rules_evaluate()["paused"] == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED


def test_an_idle_look_costs_a_few_queries_whatever_was_measured_before(clock, django_assert_num_queries):
    for _ in range(3):
        campaign = CampaignFactory()
        for metric in Metric.values:
            CampaignRuleFactory(campaign=campaign, metric=metric, threshold=99,
                                min_age_days=5 if "positive" in metric else 0)
        for email in sends(campaign, 30, at=clock.at - timedelta(days=10))[::10]:
            answer(email, Category.POSITIVE)
    metrics_compute(now=clock.at)
    rules_evaluate()
    clock.advance(minutes=20)  # past the quarter hour each look reaches back for changes
    metrics_compute(now=clock.at)
    rules_evaluate()
    clock.advance(minutes=1)
    # The cursors, (a savepoint,) the changed emails, the emails where the window's start moved, the subjects
    # with their snapshots, the failed emails, the cursors again.
    with django_assert_num_queries(9):
        metrics_compute(now=clock.at, window_days=METRICS_WINDOW_DAYS)
    # The rules, their evidence, the cursors, (a savepoint,) the changed campaigns, the out-of-date measurements
    # dropped, the cursors again.
    with django_assert_num_queries(8):
        assert rules_evaluate()["evaluated"] == 15
