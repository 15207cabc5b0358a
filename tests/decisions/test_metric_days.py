"""The metrics step adds up stored days instead of counting every email: over seeded random histories,
and after the changes a running system makes between two steps, what it stores and returns equals the
count straight from every email (``metrics_count_emails``), on either database."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from cam.decisions import DAY_COUNTS, _count_days, metrics_compute, metrics_count_emails
from cam.models import InboundEmail, MetricDay, OutboundEmail
from tests.decisions.helpers import answer, provider_event, sends
from tests.factories import CampaignFactory, MailboxFactory

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category
Confirmation = InboundEmail.Confirmation
Status = OutboundEmail.Status
COUNTS = ("failed", *DAY_COUNTS)
CATEGORIES = [Category.POSITIVE, Category.NEGATIVE, Category.UNSUBSCRIBE, Category.OUT_OF_OFFICE,
              Category.BOUNCE_HARD, Category.BOUNCE_SOFT, Category.COMPLAINT, Category.QUESTION,
              Category.AUTO_REPLY]


def assert_equal_to_counting_every_email(metrics, *, now, window_days=7):
    since = now - timedelta(days=window_days)
    for name, field in (("campaigns", "campaign_id"), ("mailboxes", "mailbox_id")):
        expected = metrics_count_emails(field, since)
        for subject_id, periods in metrics[name].items():
            for period, key in (("window", "win"), ("all_time", "all")):
                want = {count: expected.get(subject_id, {}).get(key, {}).get(count, 0) for count in COUNTS}
                got = {count: periods[period][count] for count in COUNTS}
                assert got == want, (name, subject_id, period)


def history(rng: random.Random):
    """Three campaigns over four mailboxes: sends spread over 40 days (many around the window's first
    day), failures, and replies, notices, provider events and unsubscribes on them."""
    now = timezone.now()
    campaigns = [CampaignFactory() for _ in range(3)]
    mailboxes = [MailboxFactory() for _ in range(4)]
    emails = []
    for _ in range(40):
        at = now - timedelta(days=rng.choice([rng.uniform(0, 40), rng.uniform(6.5, 7.5)]))
        emails += sends(rng.choice(campaigns), rng.randint(1, 4), mailbox=rng.choice(mailboxes), at=at)
    for _ in range(6):
        failed = sends(rng.choice(campaigns), 2, mailbox=rng.choice(mailboxes), status=Status.FAILED)
        OutboundEmail.objects.filter(pk__in=[e.pk for e in failed]).update(
            updated_at=now - timedelta(days=rng.uniform(0, 20)))
    manual = rng.sample(emails, 5)  # a person's answers are not counted
    OutboundEmail.objects.filter(pk__in=[e.pk for e in manual]).update(kind=OutboundEmail.Kind.MANUAL, step=None)
    for email in rng.sample(emails, 60):
        reply = answer(email, rng.choice(CATEGORIES))
        if reply.category in (Category.BOUNCE_HARD, Category.COMPLAINT) and rng.random() < 0.5:
            InboundEmail.objects.filter(pk=reply.pk).update(
                confirmation=rng.choice([Confirmation.NEEDED, Confirmation.DISMISSED, Confirmation.CONFIRMED]))
    for email in rng.sample(emails, 12):
        provider_event(email, rng.choice(["bounced", "complained", "delivered"]))
    for email in rng.sample(emails, 8):
        OutboundEmail.objects.filter(pk=email.pk).update(unsubscribed_at=now - timedelta(days=1))
    for email in rng.sample(emails, 6):
        OutboundEmail.objects.filter(pk=email.pk).update(soft_bounces=1)
    return campaigns, mailboxes, emails


def live_changes(rng: random.Random, campaigns, mailboxes, emails) -> None:
    """What happens between two steps, as the system does it: each change stamped now."""
    now = timezone.now()
    sends(rng.choice(campaigns), 5, mailbox=rng.choice(mailboxes), at=now)
    OutboundEmail.objects.filter(pk__in=[e.pk for e in sends(campaigns[0], 2, status=Status.FAILED)]).update(
        updated_at=now)
    for email in rng.sample(emails, 10):  # replies to old emails, read now
        answer(email, rng.choice(CATEGORIES))
    held = InboundEmail.objects.filter(confirmation=Confirmation.NEEDED)
    for reply in held[:3]:
        InboundEmail.objects.filter(pk=reply.pk).update(
            confirmation=rng.choice([Confirmation.CONFIRMED, Confirmation.DISMISSED]), confirmation_at=now)
    for reply in InboundEmail.objects.filter(category=Category.POSITIVE)[:2]:  # a person reclassifies
        InboundEmail.objects.filter(pk=reply.pk).update(category=Category.NEGATIVE, classified_at=now)
    for email in rng.sample(emails, 3):
        provider_event(email, rng.choice(["bounced", "complained"]))
    for email in rng.sample(emails, 3):  # the footer's link
        OutboundEmail.objects.filter(pk=email.pk).update(unsubscribed_at=now, updated_at=now)
    for email in rng.sample(emails, 2):  # a soft bounce read now
        answer(email, Category.BOUNCE_SOFT)
        OutboundEmail.objects.filter(pk=email.pk).update(soft_bounces=2)


def day_key(day: MetricDay) -> tuple:
    return day.scope, day.subject_id, day.day


def day_counts(day: MetricDay) -> dict[str, int]:
    return {count: getattr(day, count) for count in DAY_COUNTS}


def stored_days() -> dict[tuple, dict[str, int]]:
    return {day_key(day): day_counts(day) for day in MetricDay.objects.all()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_stored_days_add_up_to_counting_every_email_before_and_after_live_changes(seed):
    rng = random.Random(seed)
    campaigns, mailboxes, emails = history(rng)

    first = metrics_compute()
    assert_equal_to_counting_every_email(first, now=timezone.now())
    assert MetricDay.objects.exists()

    live_changes(rng, campaigns, mailboxes, emails)
    now = timezone.now()
    assert_equal_to_counting_every_email(metrics_compute(now=now), now=now)
    # Only the changed days of the changed campaigns and mailboxes were recounted; every stored day is as a
    # recount of every day has it.
    assert stored_days() == {day_key(day): day_counts(day) for day in _count_days(None)}

    # The window moves on with the clock, the days stay.
    later = now + timedelta(days=2, hours=5)
    assert_equal_to_counting_every_email(metrics_compute(now=later), now=later)
    assert_equal_to_counting_every_email(metrics_compute(now=now, window_days=30), now=now, window_days=30)


def test_a_full_recount_rebuilds_the_days_after_changes_the_step_cannot_see():
    campaign = CampaignFactory()
    emails = sends(campaign, 6, at=timezone.now() - timedelta(days=3))
    metrics_compute()
    OutboundEmail.objects.filter(pk=emails[0].pk).delete()  # deleted: no change stamped anywhere

    assert metrics_compute()["campaigns"][campaign.pk]["all_time"]["sent"] == 6
    assert metrics_compute(full=True)["campaigns"][campaign.pk]["all_time"]["sent"] == 5
