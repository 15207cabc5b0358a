"""All rules measured together, in a fixed number of queries: the same samples, hits and evidence as each
rule's own sends counted one by one with the metrics' outcome flags."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cam.campaigns import campaign_rules_ensure_defaults
from cam.decisions import FLAG_COUNTS, METRIC_COUNTS, _with_flags, rules_evaluate, rules_measure
from cam.models import Campaign, CampaignRule, InboundEmail, OutboundEmail
from cam.models.decisions import Scope
from tests.decisions.helpers import answer, provider_event, sends
from tests.factories import CampaignFactory, CampaignRuleFactory, MailboxFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Metric = CampaignRule.Metric


def rule(campaign: Campaign, metric: str, **fields) -> CampaignRule:
    values = {"comparison": CampaignRule.Comparison.ABOVE, "threshold": Decimal("99"), "window": 100,
              "min_sample": 20, "action": CampaignRule.Action.PAUSE}
    return CampaignRuleFactory(campaign=campaign, metric=metric, **{**values, **fields})


def expected(rule: CampaignRule, *, after, now) -> dict[int | None, tuple[int, int, object]]:
    """The rule's measurement the slow way: its last ``window`` sends (per mailbox for a mailbox rule) picked
    in Python, their outcomes read from ``_with_flags``."""
    emails = OutboundEmail.objects.filter(campaign=rule.campaign, status=OutboundEmail.Status.SENT,
                                          kind=OutboundEmail.Kind.SEQUENCE, sent_at__isnull=False)
    if after is not None:
        emails = emails.filter(sent_at__gt=after)
    if rule.min_age_days:
        emails = emails.filter(sent_at__lte=now - timedelta(days=rule.min_age_days))
    flag = FLAG_COUNTS[METRIC_COUNTS[rule.metric]]
    rows = list(_with_flags(emails).order_by("-sent_at", "-pk").values("mailbox_id", "sent_at", flag))
    groups: dict[int | None, list[dict]] = {}
    for row in rows:
        key = row["mailbox_id"] if rule.scope == Scope.MAILBOX else None
        if key is not None or rule.scope == Scope.CAMPAIGN:
            groups.setdefault(key, []).append(row)
    result = {}
    for key, group in groups.items():
        last = group[: rule.window]
        result[key] = (len(last), sum(1 for row in last if row[flag]), max(row["sent_at"] for row in last))
    return result


def test_every_rule_measured_in_one_query_per_scope_matches_its_sends_counted_one_by_one(
        django_assert_num_queries):
    now = timezone.now()
    first, second = MailboxFactory(), MailboxFactory()
    campaigns = [CampaignFactory(), CampaignFactory()]
    for number, campaign in enumerate(campaigns):
        old = sends(campaign, 60, mailbox=first, at=now - timedelta(days=8 + number))
        recent = sends(campaign, 45, mailbox=second, at=now - timedelta(hours=2))
        tied = sends(campaign, 5, mailbox=first, at=now - timedelta(hours=3))
        OutboundEmail.objects.filter(pk__in=[email.pk for email in tied]).update(sent_at=now - timedelta(hours=3))
        for email in old[::7] + recent[::9]:
            answer(email, Category.BOUNCE_HARD)
        for email, confirmation in zip(old[1::11], [InboundEmail.Confirmation.NEEDED,
                                                    InboundEmail.Confirmation.DISMISSED] * 5, strict=False):
            held = answer(email, Category.BOUNCE_HARD)  # held for a person, or dismissed: proves nothing
            InboundEmail.objects.filter(pk=held.pk).update(confirmation=confirmation)
        for email in old[2::5] + tied[:2]:
            answer(email, Category.POSITIVE)
        for email in recent[3::4]:
            answer(email, Category.QUESTION)
        for email in old[4::13]:
            answer(email, Category.COMPLAINT)
        for email in recent[5::6]:
            provider_event(email, "complained")
        for email in old[6::10]:
            provider_event(email, "bounced")
        OutboundEmail.objects.filter(pk__in=[email.pk for email in recent[7::8]]).update(unsubscribed_at=now)
        for email in old[8::12]:
            answer(email, Category.UNSUBSCRIBE)
    rules = []
    for campaign in campaigns:
        rules += [rule(campaign, Metric.HARD_BOUNCE_RATE, window=30),
                  rule(campaign, Metric.COMPLAINT_RATE, window=1000),
                  rule(campaign, Metric.POSITIVE_REPLY_RATE, window=50, min_age_days=5),
                  rule(campaign, Metric.REPLY_RATE, window=7),
                  rule(campaign, Metric.UNSUBSCRIBE_RATE, window=100),
                  rule(campaign, Metric.HARD_BOUNCE_RATE, window=20, scope=Scope.MAILBOX),
                  rule(campaign, Metric.POSITIVE_REPLY_RATE, window=40, scope=Scope.MAILBOX, min_age_days=1),
                  rule(campaign, Metric.UNSUBSCRIBE_RATE, window=10, scope=Scope.MAILBOX)]
    floors = {rules[1].pk: now - timedelta(days=1), rules[5].pk: now - timedelta(hours=2, seconds=10),
              rules[8].pk: now - timedelta(days=30)}

    with django_assert_num_queries(2):  # one per scope
        measured = rules_measure(rules, floors=floors, now=now)

    for each in rules:
        assert measured[each.pk] == expected(each, after=floors.get(each.pk), now=now), each
    assert any(hits for values in measured.values() for _, hits, _ in values.values())


def test_rules_cost_the_same_queries_for_one_campaign_as_for_five(django_assert_num_queries):
    mailboxes = [MailboxFactory(), MailboxFactory()]

    def campaigns(count: int) -> None:
        Campaign.objects.update(status=Campaign.Status.DRAFT)
        for _ in range(count):
            campaign = CampaignFactory()
            campaign_rules_ensure_defaults(campaign)
            rule(campaign, Metric.REPLY_RATE)
            rule(campaign, Metric.HARD_BOUNCE_RATE, scope=Scope.MAILBOX)
            for mailbox in mailboxes:
                sends(campaign, 25, mailbox=mailbox)

    # The rules with their campaigns and kept measurements, their last decisions' evidence (no campaign is
    # degraded: nothing to ask about the rule that degraded it), the cursors, then in a transaction (here a
    # savepoint): the campaigns changed since (not looked for on the first evaluation, which has nothing kept),
    # the kept measurements that may be out of date dropped, one measurement per scope, the measurements kept,
    # the cursors again.
    campaigns(1)
    with django_assert_num_queries(10):
        assert rules_evaluate()["evaluated"] == 5
    campaigns(5)
    with django_assert_num_queries(11):
        assert rules_evaluate()["evaluated"] == 25
    # Nothing changed: nothing measured, nothing kept.
    with django_assert_num_queries(8):
        assert rules_evaluate()["evaluated"] == 25
    sends(Campaign.objects.filter(status=Campaign.Status.ACTIVE).first(), 5, at=timezone.now())
    with django_assert_num_queries(11):
        assert rules_evaluate()["evaluated"] == 25
