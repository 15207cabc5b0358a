"""A degraded campaign is active again when the rule that degraded it clears: measured on the sends made
since it fired, it no longer holds. Until then, or until a person resumes it, it stays degraded."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cam.campaigns import campaign_rules_ensure_defaults
from cam.decisions import rules_evaluate
from cam.models import Campaign, CampaignRule, HumanAlertLog, InboundEmail, RuleDecision
from tests.decisions.helpers import answer, sends
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

Status = Campaign.Status
NOW = timezone.now()
LONG_AGO = NOW - timedelta(days=20)  # the sends that degraded it
SINCE = NOW - timedelta(days=8)  # sent after it was degraded, and old enough to have been answered


def degraded_campaign() -> Campaign:
    """A campaign the default positive-reply rule degraded: 200 settled sends, none answered positively."""
    campaign = CampaignFactory()
    campaign_rules_ensure_defaults(campaign)
    sends(campaign, 200, at=LONG_AGO)
    assert rules_evaluate(now=NOW)["degraded"] == 1
    campaign.refresh_from_db()
    assert campaign.status == Status.DEGRADED
    return campaign


def positive(campaign: Campaign, count: int, positives: int) -> None:
    for email in sends(campaign, count, at=SINCE)[:positives]:
        answer(email, InboundEmail.Category.POSITIVE)


def test_it_sets_a_degraded_campaign_active_again_once_its_rule_no_longer_holds_on_the_new_sends():
    campaign = degraded_campaign()
    positive(campaign, 200, 2)  # 1 %: not below 0.5 %

    counts = rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    reason = ("Rule cleared: positive-reply rate 1 % over the last 200 sends older than 5 days, since it degraded the "
              "campaign, is no longer below 0.5 %")
    assert (counts["cleared"], campaign.status, campaign.status_reason) == (1, Status.ACTIVE, reason)
    assert campaign.status_changed_at is not None
    cleared = RuleDecision.objects.get(action=RuleDecision.Action.CLEAR)
    assert (cleared.campaign, cleared.status_before, cleared.status_after, cleared.sample_size, cleared.reason) == (
        campaign, Status.DEGRADED, Status.ACTIVE, 200, reason)
    assert cleared.rule.metric == CampaignRule.Metric.POSITIVE_REPLY_RATE
    # Only the degradation was alerted; nothing more is asked of anyone.
    assert list(HumanAlertLog.objects.values_list("alert_type", flat=True)) == ["CAMPAIGN_DEGRADED"]


def test_the_rule_does_not_degrade_it_again_on_the_sends_that_cleared_it():
    campaign = degraded_campaign()
    positive(campaign, 200, 2)
    rules_evaluate(now=NOW)

    counts = rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    assert (counts["degraded"], counts["cleared"], campaign.status) == (0, 0, Status.ACTIVE)


def test_it_stays_degraded_while_fewer_new_sends_than_the_rules_minimum_sample_are_measured():
    campaign = degraded_campaign()
    positive(campaign, 199, 10)

    counts = rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    assert (counts["below_sample"], counts["cleared"], campaign.status) == (1, 0, Status.DEGRADED)


def test_it_stays_degraded_while_the_new_sends_still_meet_the_rule():
    campaign = degraded_campaign()
    positive(campaign, 200, 0)

    counts = rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    assert (counts["cleared"], counts["degraded"], campaign.status) == (0, 0, Status.DEGRADED)
    assert not RuleDecision.objects.filter(action=RuleDecision.Action.CLEAR).exists()


def test_a_disabled_rule_does_not_clear_a_campaign_it_degraded_a_person_resumes_it():
    campaign = degraded_campaign()
    CampaignRule.objects.filter(campaign=campaign, action=CampaignRule.Action.DEGRADE).update(enabled=False)
    positive(campaign, 200, 2)

    rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    assert campaign.status == Status.DEGRADED


def test_a_pause_rule_still_pauses_a_degraded_campaign_before_its_degrade_rule_could_clear():
    campaign = degraded_campaign()
    for email in sends(campaign, 200, at=SINCE)[:20]:
        answer(email, InboundEmail.Category.BOUNCE_HARD)  # 10 % hard bounces
        answer(email, InboundEmail.Category.POSITIVE)  # and positive replies enough to clear

    counts = rules_evaluate(now=NOW)

    campaign.refresh_from_db()
    assert (counts["paused"], counts["cleared"], campaign.status) == (1, 0, Status.PAUSED)
