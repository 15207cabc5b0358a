"""Metrics per campaign and mailbox, over the rolling window and all time, from real rows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cam.dashboard import get_dashboard
from cam.decisions import metrics_compute
from cam.models import InboundEmail, MetricSnapshot, OutboundEmail
from cam.models.decisions import snapshot_computed_at
from tests.decisions.helpers import answer, provider_event, sends
from tests.factories import CampaignFactory, MailboxFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category


def test_it_counts_outcomes_and_rates_per_campaign_in_the_window_and_all_time():
    campaign = CampaignFactory()
    mailbox = MailboxFactory()
    recent = sends(campaign, 20, mailbox=mailbox)
    old = sends(campaign, 5, mailbox=mailbox, at=timezone.now() - timedelta(days=30))
    sends(campaign, 2, mailbox=mailbox, status=OutboundEmail.Status.FAILED)
    answer(recent[0], Category.BOUNCE_HARD)
    provider_event(recent[1], "bounced")
    answer(recent[2], Category.BOUNCE_SOFT)
    OutboundEmail.objects.filter(pk=recent[3].pk).update(soft_bounces=2)
    provider_event(recent[4], "complained")
    answer(recent[5], Category.POSITIVE)
    answer(recent[5], Category.POSITIVE)  # two replies to one email count once
    answer(recent[6], Category.NEGATIVE)
    answer(recent[7], Category.UNSUBSCRIBE)
    answer(recent[8], Category.OUT_OF_OFFICE)
    answer(old[0], Category.POSITIVE)
    answer(old[1], Category.BOUNCE_HARD)

    metrics = metrics_compute()

    window = metrics["campaigns"][campaign.pk]["window"]
    assert {key: window[key] for key in ["sent", "failed", "delivered", "bounced_hard", "bounced_soft", "complaints",
                                         "replies", "positive", "negative", "unsubscribes", "out_of_office"]} == {
        "sent": 20, "failed": 2, "delivered": 18, "bounced_hard": 2, "bounced_soft": 2, "complaints": 1,
        "replies": 3, "positive": 1, "negative": 1, "unsubscribes": 1, "out_of_office": 1}
    assert (window["bounced_hard_rate"], window["positive_rate"], window["complaints_rate"]) == (10.0, 5.0, 5.0)
    all_time = metrics["campaigns"][campaign.pk]["all_time"]
    assert (all_time["sent"], all_time["bounced_hard"], all_time["positive"], all_time["replies"]) == (25, 3, 2, 4)
    assert all_time["bounced_hard_rate"] == 12.0
    snapshot = MetricSnapshot.objects.get(campaign=campaign)
    assert (snapshot.key, snapshot.window_days, snapshot.window["sent"], snapshot.all_time["sent"]) == (
        f"campaign:{campaign.pk}", 7, 20, 25)


def test_it_counts_per_mailbox_and_gives_a_campaign_without_sends_zeros():
    campaign, idle = CampaignFactory(), CampaignFactory()
    first, second = MailboxFactory(), MailboxFactory()
    answer(sends(campaign, 4, mailbox=first)[0], Category.BOUNCE_HARD)
    sends(campaign, 6, mailbox=second)

    metrics = metrics_compute()

    assert metrics["mailboxes"][first.pk]["window"]["sent"] == 4
    assert metrics["mailboxes"][first.pk]["window"]["bounced_hard_rate"] == 25.0
    assert metrics["mailboxes"][second.pk]["all_time"]["sent"] == 6
    assert metrics["mailboxes"][second.pk]["all_time"]["bounced_hard"] == 0
    assert metrics["campaigns"][campaign.pk]["all_time"]["sent"] == 10
    assert metrics["campaigns"][idle.pk]["all_time"]["sent"] == 0
    assert metrics["campaigns"][idle.pk]["all_time"]["bounced_hard_rate"] is None
    assert MetricSnapshot.objects.get(mailbox=first).window["bounced_hard"] == 1


def test_it_overwrites_the_stored_snapshot_on_the_next_computation():
    campaign = CampaignFactory()
    sends(campaign, 2)
    metrics_compute()
    sends(campaign, 3, at=timezone.now())  # sent now, as a send records it
    metrics_compute()
    assert MetricSnapshot.objects.get(campaign=campaign).all_time["sent"] == 5


def test_it_uses_the_same_number_of_queries_for_one_or_five_campaigns(django_assert_num_queries):
    def campaign_with_mail():
        campaign = CampaignFactory()
        emails = sends(campaign, 30, mailbox=MailboxFactory(), at=timezone.now())
        answer(emails[0], Category.POSITIVE)
        answer(emails[1], Category.BOUNCE_HARD)

    campaign_with_mail()
    # The first computation counts every day and adds up every subject: the cursors, (a savepoint,) every day
    # dropped, counted and inserted, the campaigns and mailboxes with their snapshots, the sums, the window's
    # first day, the failed emails, the snapshots written, the cursors again.
    with django_assert_num_queries(13):
        metrics_compute()
    for _ in range(4):
        campaign_with_mail()
    # Each later one recounts the changed subjects' days that changed (here today: sent within the quarter
    # hour each look reaches back: the changed emails, the stored days they replace read and deleted, count,
    # insert), looks for emails where the window's start moved, and adds up only the subjects concerned.
    with django_assert_num_queries(16):
        metrics = metrics_compute()
    assert len(metrics["campaigns"]) == 5
    with django_assert_num_queries(15):  # today is looked at again while its sends are that recent; same counts
        metrics_compute()


def test_a_snapshot_whose_counts_did_not_change_is_not_rewritten_yet_reads_as_computed_by_the_last_computation():
    campaign = CampaignFactory()
    sends(campaign, 3, mailbox=MailboxFactory(), at=timezone.now() - timedelta(days=2))
    first = timezone.now() - timedelta(minutes=5)
    metrics_compute(now=first)
    snapshot = MetricSnapshot.objects.get(campaign=campaign)
    version = (snapshot.computed_at, snapshot.window, snapshot.all_time)
    assert snapshot.computed_at == first

    later = timezone.now()
    metrics_compute(now=later)

    snapshot.refresh_from_db()
    assert (snapshot.computed_at, snapshot.window, snapshot.all_time) == version  # the row was left alone
    assert MetricSnapshot.objects.annotate(at=snapshot_computed_at("computed_at")).get(pk=snapshot.pk).at == later
    [row] = get_dashboard()["campaigns"]
    assert row["computed_at"] == later
    # Counts that change are written with their time.
    sends(campaign, 1, at=timezone.now())
    latest = timezone.now()
    metrics_compute(now=latest)
    snapshot.refresh_from_db()
    assert snapshot.computed_at == latest and snapshot.all_time["sent"] == 4
