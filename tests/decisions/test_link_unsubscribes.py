"""An unsubscribe through the footer's link counts in the metrics and the rules as an unsubscribe reply
does: against the lead's latest email, once per email, never as a reply."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.test import Client

from cam.decisions import metrics_compute, rules_evaluate
from cam.models import Campaign, CampaignRule, InboundEmail, Lead, OutboundEmail
from cam.outreach.unsubscribe import unsubscribe_by_link, unsubscribe_url
from tests.decisions.helpers import answer, sends
from tests.factories import CampaignFactory, CampaignRuleFactory, MailboxFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category


def one_click(lead: Lead):
    return Client(enforce_csrf_checks=True).post(urlsplit(unsubscribe_url(lead)).path,
                                                 data="List-Unsubscribe=One-Click",
                                                 content_type="application/x-www-form-urlencoded")


def test_the_link_counts_against_the_leads_latest_email():
    campaign = CampaignFactory()
    (first,) = sends(campaign, 1)
    second_step = SequenceStepFactory(campaign=campaign, position=2)
    latest = OutboundEmail.objects.create(
        lead=first.lead, step=second_step, campaign=campaign, mailbox=first.mailbox, to_email=first.to_email,
        message_id="<follow-up.1@outreach.test>", status=OutboundEmail.Status.SENT,
        sent_at=first.sent_at + timedelta(minutes=30))

    assert one_click(first.lead).status_code == 200

    first.refresh_from_db()
    latest.refresh_from_db()
    assert first.unsubscribed_at is None and latest.unsubscribed_at is not None
    assert Lead.objects.get(pk=first.lead_id).status == Lead.Status.UNSUBSCRIBED


def test_link_unsubscribes_count_as_unsubscribes_not_replies_and_each_email_once():
    campaign, mailbox = CampaignFactory(), MailboxFactory()
    emails = sends(campaign, 10, mailbox=mailbox)
    unsubscribe_by_link(lead=emails[0].lead, one_click=True)
    unsubscribe_by_link(lead=emails[0].lead, one_click=False)  # clicked again: the same email, counted once
    unsubscribe_by_link(lead=emails[1].lead, one_click=False)
    answer(emails[1], Category.UNSUBSCRIBE)  # and wrote to say so: still one email
    answer(emails[2], Category.UNSUBSCRIBE)

    metrics = metrics_compute()

    for subject in (metrics["campaigns"][campaign.pk], metrics["mailboxes"][mailbox.pk]):
        window = subject["window"]
        assert (window["unsubscribes"], window["unsubscribes_rate"], window["replies"]) == (3, 30.0, 2)


def test_an_unsubscribe_rate_rule_fires_on_link_unsubscribes():
    campaign = CampaignFactory(status=Campaign.Status.ACTIVE)
    CampaignRuleFactory(campaign=campaign, metric=CampaignRule.Metric.UNSUBSCRIBE_RATE,
                        comparison=CampaignRule.Comparison.ABOVE, threshold=Decimal("5"), window=100, min_sample=20,
                        action=CampaignRule.Action.PAUSE)
    emails = sends(campaign, 20)
    unsubscribe_by_link(lead=emails[0].lead, one_click=True)
    unsubscribe_by_link(lead=emails[1].lead, one_click=True)

    assert rules_evaluate()["paused"] == 1

    campaign.refresh_from_db()
    assert campaign.status_reason == "Unsubscribe rate 10 % over the last 20 sends is above 5 %"


def test_a_lead_never_sent_to_unsubscribes_without_counting_anywhere():
    campaign = CampaignFactory()
    (email,) = sends(campaign, 1, status=OutboundEmail.Status.PENDING)

    assert unsubscribe_by_link(lead=email.lead, one_click=False) is True

    assert not OutboundEmail.objects.filter(unsubscribed_at__isnull=False).exists()
    assert metrics_compute()["campaigns"][campaign.pk]["all_time"]["unsubscribes"] == 0
