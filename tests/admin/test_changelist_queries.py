"""Each big list costs a fixed number of queries, whether it shows one row or a hundred, on SQLite and PostgreSQL.

The number is pinned, not only compared: a new column that reads a related row, or a filter that reads a table,
shows up here as a count that moved. What each query is for is said beside each list.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.models import InboundEmail, OutboundEmail
from tests import factories

pytestmark = pytest.mark.django_db

# Every admin page reads the session and the user, and its sidebar counts the positive replies nobody has handled
# (the badge on *Replies*): 3 queries before the list's own.
PAGE = 3


def leads(rows: int) -> None:
    campaigns = factories.CampaignFactory.create_batch(3)
    for n in range(rows):
        factories.LeadFactory(campaign=campaigns[n % 3], company="Internationale Speditions- und Lagerhaus GmbH",
                              next_send_at=timezone.now(), blocked_reason="outside_window")


def outbound_emails(rows: int) -> None:
    for n in range(rows):
        factories.OutboundEmailFactory(status=OutboundEmail.Status.FAILED if n % 2 else OutboundEmail.Status.SENT,
                                       last_error="550 5.1.1 No such user" if n % 2 else "",
                                       sent_at=None if n % 2 else timezone.now())


def replies(rows: int) -> None:
    for n in range(rows):
        sent = factories.OutboundEmailFactory(status=OutboundEmail.Status.SENT, sent_at=timezone.now())
        held = n % 3 == 0
        factories.InboundEmailFactory(
            mailbox=sent.mailbox, outbound_email=sent, lead=None if n % 5 == 0 else sent.lead,
            category=InboundEmail.Category.BOUNCE_HARD if held else InboundEmail.Category.POSITIVE,
            confirmation=InboundEmail.Confirmation.NEEDED if held else "", confidence=0.9,
            classification_reasons=["phrase: sounds good"], processed_at=timezone.now())


def campaigns(rows: int) -> None:
    for campaign in factories.CampaignFactory.create_batch(rows):
        factories.LeadFactory(campaign=campaign)
        factories.SequenceStepFactory(campaign=campaign)
        factories.MetricSnapshotFactory(campaign=campaign, all_time={"sent": 40, "replies": 4, "positive_rate": 5.0,
                                                                     "bounced_hard_rate": 2.5})


def job_executions(rows: int) -> None:
    campaign = factories.CampaignFactory()
    for n in range(rows):
        factories.JobExecutionFactory(campaign=campaign if n % 2 else None, counts={"read": 10, "created": 9},
                                      error="SourceError: gone" if n % 3 == 0 else "")


def suppressions(rows: int) -> None:
    factories.SuppressionFactory.create_batch(rows)


def lead_events(rows: int) -> None:
    factories.LeadEventFactory.create_batch(rows)


# The list, what makes its rows, and the queries of its page beyond the session and the user.
LISTS = {
    # the count; the rows with their campaign; the campaign filter's choices
    "lead": (leads, 3),
    # the count; the rows with their step and mailbox; the campaign and mailbox filters' choices
    "outboundemail": (outbound_emails, 4),
    # the count; the rows; the mailbox filter's choices
    "inboundemail": (replies, 3),
    # the count; the rows with their counts and stored metrics
    "campaign": (campaigns, 2),
    # the count; the rows with their campaign; the campaign filter's choices
    "jobexecution": (job_executions, 3),
    # the count; the rows
    "suppression": (suppressions, 2),
    # the count; the rows with their lead
    "leadevent": (lead_events, 2),
}


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("model", list(LISTS))
def test_a_list_costs_the_same_queries_for_one_row_or_a_hundred(admin_client, django_assert_num_queries, model, rows):
    make, queries = LISTS[model]
    make(rows)

    with django_assert_num_queries(PAGE + queries):
        response = admin_client.get(reverse(f"admin:cam_{model}_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == rows
    assert len(response.context["cl"].result_list) == rows
