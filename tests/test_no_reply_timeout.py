"""The no-reply timeout moves every campaign's silent leads in a few statements, however many campaigns."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cam.followup import leads_no_reply_timeout
from cam.models import Lead, LeadEvent
from tests.factories import CampaignFactory, LeadFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db

Status = Lead.Status


def silent_campaign(*, no_reply_days: int = 3, outcome: str = "NURTURE", silent: int = 1) -> list[Lead]:
    """A campaign with two steps; ``silent`` leads had the last one ``no_reply_days`` and a day ago, one had
    it yesterday and one is still at the first step."""
    campaign = CampaignFactory(no_reply_days=no_reply_days, no_reply_outcome=outcome)
    SequenceStepFactory(campaign=campaign, position=1)
    SequenceStepFactory(campaign=campaign, position=2)
    long_ago = timezone.now() - timedelta(days=no_reply_days + 1)
    LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=2, next_send_at=None,
                last_contacted_at=timezone.now() - timedelta(days=1))
    LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=1, next_send_at=None,
                last_contacted_at=long_ago)
    return [LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=2, next_send_at=None,
                        last_contacted_at=long_ago) for _ in range(silent)]


def test_each_campaign_keeps_its_own_wait_and_outcome():
    nurtured = silent_campaign(no_reply_days=3, outcome="NURTURE", silent=2)
    dead = silent_campaign(no_reply_days=10, outcome="DEAD")

    assert leads_no_reply_timeout() == {"nurture": 2, "dead": 1}

    assert set(Lead.objects.filter(status=Status.NURTURE).values_list("pk", flat=True)) == {
        lead.pk for lead in nurtured}
    assert list(Lead.objects.filter(status=Status.DEAD).values_list("pk", flat=True)) == [dead[0].pk]
    assert LeadEvent.objects.get(lead=dead[0]).reason == "No reply 10 days after the last email."
    assert Lead.objects.filter(status=Status.IN_SEQUENCE).count() == 4


def test_it_costs_the_same_queries_for_one_campaign_as_for_five(django_assert_num_queries):
    silent_campaign()
    # The campaigns, then per wait, outcome and last step, in a savepoint here (a transaction in the worker): the silent
    # leads, their events and their move.
    with django_assert_num_queries(6):
        assert leads_no_reply_timeout() == {"nurture": 1, "dead": 0}
    for _ in range(5):
        silent_campaign()
    with django_assert_num_queries(6):
        assert leads_no_reply_timeout() == {"nurture": 5, "dead": 0}
    with django_assert_num_queries(4):  # nothing silent: the campaigns, the search
        assert leads_no_reply_timeout() == {"nurture": 0, "dead": 0}


def test_each_campaign_is_held_to_its_own_last_enabled_step():
    long_ago = timezone.now() - timedelta(days=10)

    def campaign_with(steps: int, *, disabled_last: bool = False):
        campaign = CampaignFactory(no_reply_days=3, no_reply_outcome="NURTURE")
        for position in range(1, steps + 1):
            SequenceStepFactory(campaign=campaign, position=position,
                                is_enabled=not (disabled_last and position == steps))
        return [LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=step, next_send_at=None,
                            last_contacted_at=long_ago) for step in range(1, steps + 1)]

    two = campaign_with(2)  # last step 2
    three = campaign_with(3)  # last step 3
    three_with_last_disabled = campaign_with(3, disabled_last=True)  # last enabled step 2

    assert leads_no_reply_timeout() == {"nurture": 4, "dead": 0}

    assert set(Lead.objects.filter(status=Status.NURTURE).values_list("pk", flat=True)) == {
        two[1].pk, three[2].pk, three_with_last_disabled[1].pk, three_with_last_disabled[2].pk}
