"""Rules with the mailbox scope: each mailbox's sends for the campaign judged on their own."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cam.campaigns import campaigns_resume
from cam.decisions import rule_measure_mailboxes, rules_evaluate
from cam.models import Campaign, CampaignRule, HumanAlertLog, InboundEmail, RuleDecision
from cam.models.decisions import Scope
from tests.decisions.helpers import answer, sends
from tests.factories import CampaignFactory, CampaignRuleFactory, MailboxFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Status = Campaign.Status


def mailbox_rule(campaign: Campaign, **fields) -> CampaignRule:
    values = {"metric": CampaignRule.Metric.HARD_BOUNCE_RATE, "comparison": CampaignRule.Comparison.ABOVE,
              "threshold": Decimal("5"), "window": 100, "min_sample": 20, "action": CampaignRule.Action.PAUSE,
              "scope": Scope.MAILBOX}
    return CampaignRuleFactory(campaign=campaign, **{**values, **fields})


def bounced(campaign, mailbox, count, bounces, **kwargs):
    for email in sends(campaign, count, mailbox=mailbox, **kwargs)[:bounces]:
        answer(email, Category.BOUNCE_HARD)


def test_one_bad_mailbox_pauses_the_campaign_though_the_campaign_as_a_whole_is_below_the_threshold():
    campaign = CampaignFactory()
    good, bad = MailboxFactory(name="Good"), MailboxFactory(name="Bad", from_email="bad@agency.test")
    as_campaign = CampaignRuleFactory(campaign=campaign, metric=CampaignRule.Metric.HARD_BOUNCE_RATE,
                                      threshold=Decimal("5"), window=1000, min_sample=20, scope=Scope.CAMPAIGN)
    per_mailbox = mailbox_rule(campaign)
    bounced(campaign, good, 200, 0)
    bounced(campaign, bad, 40, 4)  # 10 % from Bad; 4 of 240 (1.7 %) for the campaign

    counts = rules_evaluate()

    campaign.refresh_from_db()
    assert campaign.status == Status.PAUSED
    assert campaign.status_reason == ("Hard-bounce rate 10 % over the last 40 sends from Bad <bad@agency.test> "
                                      "is above 5 %")
    decision = RuleDecision.objects.get()
    assert (decision.rule, decision.mailbox, decision.sample_size, decision.measured_value) == (
        per_mailbox, bad, 40, Decimal("10.000"))
    assert counts["paused"] == 1 and counts["evaluated"] == 2  # the campaign rule measured first, did not fire
    assert as_campaign.pk < per_mailbox.pk
    alert = HumanAlertLog.objects.get(alert_type=HumanAlertLog.AlertType.CAMPAIGN_PAUSED)
    assert "from Bad <bad@agency.test>" in alert.body


def test_a_mailbox_below_its_minimum_sample_is_not_judged():
    campaign = CampaignFactory()
    mailbox_rule(campaign)
    bounced(campaign, MailboxFactory(), 19, 19)  # every send bounced, but only 19 of them
    bounced(campaign, MailboxFactory(), 30, 0)

    counts = rules_evaluate()

    assert counts == {"evaluated": 1, "below_sample": 0, "fired": 0, "paused": 0, "degraded": 0, "cleared": 0}
    assert Campaign.objects.get().status == Status.ACTIVE
    bounced(campaign, MailboxFactory(), 5, 5)
    assert rules_evaluate()["below_sample"] == 0  # the 30-send mailbox is judged, the others are too small
    assert Campaign.objects.get().status == Status.ACTIVE


def test_no_mailbox_with_its_minimum_sample_counts_as_below_sample():
    campaign = CampaignFactory()
    mailbox_rule(campaign)
    bounced(campaign, MailboxFactory(), 10, 10)
    bounced(campaign, MailboxFactory(), 10, 10)  # 20 sends in all, but 10 per mailbox

    assert rules_evaluate()["below_sample"] == 1
    assert Campaign.objects.get().status == Status.ACTIVE


def test_each_mailbox_is_measured_over_its_own_last_window_sends():
    campaign = CampaignFactory()
    rule = mailbox_rule(campaign, window=30)
    first, second = MailboxFactory(), MailboxFactory()
    bounced(campaign, first, 20, 20, at=timezone.now() - timedelta(days=3))  # older than its last 30
    sends(campaign, 30, mailbox=first)
    sends(campaign, 25, mailbox=second)

    measured = rule_measure_mailboxes(rule, after=None)

    assert {mailbox: (sample, hits) for mailbox, (sample, hits, _) in measured.items()} == {
        first.pk: (30, 0), second.pk: (25, 0)}
    assert rules_evaluate()["fired"] == 0


def test_a_below_rule_is_judged_on_the_worst_mailbox_and_degrades():
    campaign = CampaignFactory()
    mailbox_rule(campaign, metric=CampaignRule.Metric.POSITIVE_REPLY_RATE, comparison=CampaignRule.Comparison.BELOW,
                 threshold=Decimal("2"), min_sample=50, action=CampaignRule.Action.DEGRADE)
    lively, silent = MailboxFactory(name="Lively"), MailboxFactory(name="Silent")
    for email in sends(campaign, 50, mailbox=lively)[:5]:
        answer(email, Category.POSITIVE)
    sends(campaign, 50, mailbox=silent)

    assert rules_evaluate()["degraded"] == 1
    decision = RuleDecision.objects.get()
    assert decision.mailbox == silent and decision.measured_value == Decimal("0")
    assert Campaign.objects.get().status == Status.DEGRADED


def test_it_does_not_fire_again_on_the_same_evidence_after_a_resume():
    campaign = CampaignFactory()
    mailbox_rule(campaign)
    bad = MailboxFactory()
    bounced(campaign, bad, 40, 4, at=timezone.now() - timedelta(minutes=30))
    rules_evaluate()
    campaigns_resume(campaign_ids=[campaign.pk], reason="Mailbox checked")

    assert rules_evaluate()["fired"] == 0
    assert Campaign.objects.get().status == Status.ACTIVE

    bounced(campaign, bad, 20, 2, at=timezone.now())  # new evidence: 10 % again
    assert rules_evaluate()["paused"] == 1
    assert RuleDecision.objects.count() == 2


def test_a_mailbox_rule_costs_the_same_queries_however_many_mailboxes_sent():
    def queries_with(mailboxes: int) -> int:
        campaign = CampaignFactory()
        mailbox_rule(campaign)
        for _ in range(mailboxes):
            sends(campaign, 25, mailbox=MailboxFactory())
        with CaptureQueriesContext(connection) as captured:
            rules_evaluate()
        Campaign.objects.filter(pk=campaign.pk).update(status=Status.DRAFT)
        return len(captured)

    queries_with(1)  # the first evaluation has nothing kept: it measures every rule without looking for changes
    assert queries_with(1) == queries_with(6)


def test_the_admin_offers_the_mailbox_scope(admin_client):
    campaign = CampaignFactory()
    rule = mailbox_rule(campaign)

    page = admin_client.get(f"/admin/cam/campaignrule/{rule.pk}/change/")

    assert page.status_code == 200
    assert b'<option value="mailbox" selected>Mailbox</option>' in page.content
    assert "(per mailbox)" in str(rule)
