"""Campaign rules: the defaults, firing and not firing, the decision, the alert, resume and the cycle."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models.signals import post_init
from django.urls import reverse
from django.utils import timezone

from cam.campaigns import campaign_rules_ensure_defaults, campaigns_resume
from cam.decisions import rules_evaluate
from cam.jobs.cycle import worker_cycle_run
from cam.models import Campaign, CampaignRule, HumanAlertLog, InboundEmail, RuleDecision
from tests.backoffice.test_campaign_admin import campaign_form
from tests.decisions.helpers import answer, sends
from tests.factories import CampaignFactory, CampaignRuleFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Status = Campaign.Status


def campaign_with_defaults(**fields) -> Campaign:
    campaign = CampaignFactory(**fields)
    campaign_rules_ensure_defaults(campaign)
    return campaign


def bounced(campaign: Campaign, count: int, bounces: int, **kwargs) -> None:
    for email in sends(campaign, count, **kwargs)[:bounces]:
        answer(email, Category.BOUNCE_HARD)


def status_of(campaign: Campaign) -> tuple[str, str]:
    campaign.refresh_from_db()
    return campaign.status, campaign.status_reason


def test_it_gives_a_new_campaign_the_three_default_rules_once():
    campaign = campaign_with_defaults()
    assert campaign_rules_ensure_defaults(campaign) == 0
    rules = {(r.metric, r.comparison, r.threshold, r.window, r.min_sample, r.action, r.min_age_days)
             for r in CampaignRule.objects.filter(campaign=campaign)}
    assert rules == {
        ("hard_bounce_rate", "above", Decimal("5.00"), 100, 20, "PAUSE", 0),
        ("complaint_rate", "above", Decimal("0.30"), 1000, 100, "PAUSE", 0),
        ("positive_reply_rate", "below", Decimal("0.50"), 200, 200, "DEGRADE", 5),
    }


def test_it_pauses_on_the_hard_bounce_rate_with_the_reason_a_decision_and_one_alert():
    campaign = campaign_with_defaults()
    bounced(campaign, 28, 2)  # 7.14 %

    counts = rules_evaluate()

    assert counts["paused"] == 1
    assert status_of(campaign) == (Status.PAUSED, "Hard-bounce rate 7.14 % over the last 28 sends is above 5 %")
    decision = RuleDecision.objects.get(campaign=campaign)
    assert (decision.rule.metric, decision.measured_value, decision.sample_size, decision.action,
            decision.status_before, decision.status_after) == (
        "hard_bounce_rate", Decimal("7.143"), 28, "PAUSE", "ACTIVE", "PAUSED")
    alert = HumanAlertLog.objects.get(campaign=campaign)
    assert (alert.alert_type, alert.title) == ("CAMPAIGN_PAUSED", f"Campaign {campaign.name} paused")
    assert "Hard-bounce rate 7.14 %" in alert.body
    assert alert.idempotency_key.startswith(f"rule-decision:{decision.pk}|")

    assert rules_evaluate()["fired"] == 0  # paused: nothing more to decide
    assert (RuleDecision.objects.count(), HumanAlertLog.objects.count()) == (1, 1)


def test_it_does_not_judge_the_hard_bounce_rate_below_its_minimum_sample():
    campaign = campaign_with_defaults()
    bounced(campaign, 19, 10)

    assert rules_evaluate()["below_sample"] == 3
    assert status_of(campaign)[0] == Status.ACTIVE
    assert not RuleDecision.objects.exists()


def test_it_measures_only_the_rule_window_of_last_sends():
    campaign = campaign_with_defaults()
    bounced(campaign, 50, 50, at=timezone.now() - timedelta(days=2))  # older than the last 100 sends
    sends(campaign, 100)

    rules_evaluate()

    assert status_of(campaign)[0] == Status.ACTIVE


def test_it_pauses_on_the_complaint_rate_only_from_its_minimum_sample():
    quiet, loud = campaign_with_defaults(), campaign_with_defaults()
    answer(sends(quiet, 99)[0], Category.COMPLAINT)
    answer(sends(loud, 100)[0], Category.COMPLAINT)

    rules_evaluate()

    assert status_of(quiet)[0] == Status.ACTIVE
    assert status_of(loud) == (Status.PAUSED, "Complaint rate 1 % over the last 100 sends is above 0.3 %")


SETTLED = timezone.now() - timedelta(days=6)  # sent long enough ago to have been answered


def test_it_degrades_on_a_low_positive_reply_rate_after_200_sends():
    early, late = campaign_with_defaults(), campaign_with_defaults()
    sends(early, 199, at=SETTLED)
    sends(late, 200, at=SETTLED)

    counts = rules_evaluate()

    assert counts["degraded"] == 1
    assert status_of(early)[0] == Status.ACTIVE
    assert status_of(late) == (Status.DEGRADED, "Positive-reply rate 0 % over the last 200 sends older than 5 days "
                                                "is below 0.5 %")
    assert HumanAlertLog.objects.get(campaign=late).alert_type == "CAMPAIGN_DEGRADED"


def test_the_positive_reply_rate_counts_only_sends_old_enough_to_have_been_answered():
    campaign = campaign_with_defaults()
    now = timezone.now()
    sends(campaign, 300, at=now - timedelta(days=5) + timedelta(minutes=10))  # not yet five days old

    assert rules_evaluate(now=now)["below_sample"] == 1  # the positive-reply rule: nothing old enough
    assert status_of(campaign)[0] == Status.ACTIVE
    # Five days on, the same sends are measured, still with no answer.
    assert rules_evaluate(now=now + timedelta(days=1))["degraded"] == 1
    assert "over the last 200 sends older than 5 days" in status_of(campaign)[1]


def test_the_newest_unanswered_sends_do_not_pull_the_positive_reply_rate_down():
    campaign = campaign_with_defaults()
    for email in sends(campaign, 200, at=SETTLED)[:2]:
        answer(email, Category.POSITIVE)  # 1 % of the sends old enough to tell
    sends(campaign, 500, at=timezone.now() - timedelta(hours=2))  # this week's, mostly unanswered yet

    rules_evaluate()

    assert status_of(campaign)[0] == Status.ACTIVE


def test_the_complaint_rule_looks_at_the_last_thousand_sends():
    campaign = campaign_with_defaults()
    for email in sends(campaign, 3, at=timezone.now() - timedelta(days=3)):
        answer(email, Category.COMPLAINT)  # 3 complaints, then 1,000 clean sends after them
    sends(campaign, 1000)

    rules_evaluate()

    assert status_of(campaign)[0] == Status.ACTIVE


def test_the_complaint_rule_pauses_at_gmails_threshold_over_a_thousand_sends():
    campaign = campaign_with_defaults()
    for email in sends(campaign, 1000)[:4]:
        answer(email, Category.COMPLAINT)  # 0.4 %

    rules_evaluate()

    assert status_of(campaign) == (Status.PAUSED, "Complaint rate 0.4 % over the last 1000 sends is above 0.3 %")


def test_it_does_not_degrade_a_campaign_with_enough_positive_replies():
    campaign = campaign_with_defaults()
    answer(sends(campaign, 200, at=SETTLED)[0], Category.POSITIVE)  # 0.5 % is not below 0.5 %
    rules_evaluate()
    assert status_of(campaign)[0] == Status.ACTIVE


def test_it_still_pauses_a_degraded_campaign():
    campaign = campaign_with_defaults(status=Status.DEGRADED)
    bounced(campaign, 20, 5)
    rules_evaluate()
    assert status_of(campaign)[0] == Status.PAUSED


def test_it_ignores_a_disabled_rule_and_campaigns_that_are_not_sending():
    campaign = CampaignFactory()
    CampaignRuleFactory(campaign=campaign, enabled=False)
    draft = CampaignFactory(status=Status.DRAFT)
    CampaignRuleFactory(campaign=draft)
    bounced(campaign, 30, 10)
    bounced(draft, 30, 10)

    assert rules_evaluate()["evaluated"] == 0
    assert status_of(campaign)[0] == Status.ACTIVE
    assert status_of(draft)[0] == Status.DRAFT
    assert not RuleDecision.objects.exists()


def test_it_does_not_fire_again_on_the_same_evidence_after_a_resume_but_on_new_evidence():
    campaign = campaign_with_defaults()
    bounced(campaign, 40, 10, at=timezone.now() - timedelta(hours=3))
    rules_evaluate()
    assert status_of(campaign)[0] == Status.PAUSED

    campaigns_resume(campaign_ids=[campaign.pk], reason="Resumed by staff")
    counts = rules_evaluate()
    assert counts["fired"] == 0
    assert status_of(campaign) == (Status.ACTIVE, "Resumed by staff")

    sends(campaign, 30, at=timezone.now() - timedelta(hours=2))  # clean sends: still fine
    assert rules_evaluate()["fired"] == 0

    bounced(campaign, 10, 8, at=timezone.now() - timedelta(hours=1))  # 8 of the 40 new sends bounce
    assert rules_evaluate()["paused"] == 1
    assert status_of(campaign) == (Status.PAUSED, "Hard-bounce rate 20 % over the last 40 sends is above 5 %")
    assert RuleDecision.objects.filter(campaign=campaign).count() == 2
    assert HumanAlertLog.objects.filter(campaign=campaign, alert_type="CAMPAIGN_PAUSED").count() == 2


def test_another_rule_still_counts_the_sends_a_decision_judged():
    """A bounce pause judged the first sends; complaints that arrive on them afterwards still count
    for the complaint rule, which never judged them."""
    campaign = campaign_with_defaults()
    old = sends(campaign, 40, at=timezone.now() - timedelta(hours=3))
    for email in old[:4]:
        answer(email, Category.BOUNCE_HARD)
    rules_evaluate()
    campaigns_resume(campaign_ids=[campaign.pk], reason="Resumed by staff")
    for email in old[10:15]:
        answer(email, Category.COMPLAINT)
    sends(campaign, 100, at=timezone.now() - timedelta(hours=1))

    assert rules_evaluate()["paused"] == 1
    assert status_of(campaign)[1] == "Complaint rate 3.57 % over the last 140 sends is above 0.3 %"


def test_it_gives_a_campaign_created_in_the_admin_the_default_rules(admin_client):
    response = admin_client.post(reverse("admin:cam_campaign_add"), campaign_form(max_hard_bounce_rate="3"))
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    thresholds = dict(CampaignRule.objects.filter(campaign=campaign).values_list("metric", "threshold"))
    assert thresholds == {"hard_bounce_rate": Decimal("3.00"), "complaint_rate": Decimal("0.30"),
                          "positive_reply_rate": Decimal("0.50")}
    page = admin_client.get(reverse("admin:cam_campaign_change", args=[campaign.pk])).content.decode()
    assert 'name="rules-0-threshold"' in page


def test_it_runs_metrics_and_rules_in_the_worker_cycle():
    campaign = campaign_with_defaults()
    bounced(campaign, 20, 3)

    result = worker_cycle_run(worker_id="w1")

    assert result.errors == {}
    assert result.steps["metrics"]["campaigns"] == 1
    assert result.steps["rules"]["paused"] == 1
    assert status_of(campaign)[0] == Status.PAUSED
    assert HumanAlertLog.objects.get(campaign=campaign).sent_successfully  # the alerts step sent it


# -- the migration that gives existing default rules the wait ---------------------------------------

def test_the_migration_gives_the_wait_only_to_default_rules_staff_never_saved():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("cam.migrations.0011_rule_wait_and_link_unsubscribes")
    untouched, saved, edited = campaign_with_defaults(), campaign_with_defaults(), campaign_with_defaults()
    positive = CampaignRule.Metric.POSITIVE_REPLY_RATE
    CampaignRule.objects.filter(metric=positive).update(min_age_days=0)  # as the rules were before
    later = timezone.now() + timedelta(minutes=3)
    CampaignRule.objects.filter(campaign=saved, metric=positive).update(updated_at=later)  # saved, unchanged
    CampaignRule.objects.filter(campaign=edited, metric=positive).update(window=500, updated_at=later)

    migration.wait_for_replies(apps, None)

    waits = dict(CampaignRule.objects.filter(metric=positive).values_list("campaign_id", "min_age_days"))
    assert waits == {untouched.pk: 5, saved.pk: 0, edited.pk: 0}
    assert set(CampaignRule.objects.exclude(metric=positive).values_list("min_age_days", flat=True)) == {0}


def test_a_cycle_builds_a_rule_instance_only_for_the_rule_that_fires():
    # Rules are judged as rows: hundreds of model instances every cycle cost more than judging them.
    quiet, bouncing = campaign_with_defaults(), campaign_with_defaults()
    sends(quiet, 30)
    built: list[CampaignRule] = []

    def count(sender, instance, **kwargs):
        built.append(instance)

    post_init.connect(count, sender=CampaignRule)
    try:
        assert rules_evaluate()["fired"] == 0
        assert built == []
        bounced(bouncing, 28, 2)
        assert rules_evaluate()["paused"] == 1
    finally:
        post_init.disconnect(count, sender=CampaignRule)
    assert [(rule.campaign_id, rule.metric) for rule in built] == [(bouncing.pk, CampaignRule.Metric.HARD_BOUNCE_RATE)]
