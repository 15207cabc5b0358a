"""Qualification: a scored lead enters the sequence at the next window opening, or is set aside with why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.jobs.runner import run_job
from cam.models import HarvestRejection, JobExecution, Lead, OutboundEmail
from cam.pipeline.qualify import leads_qualify
from tests.factories import (
    IN_FLIGHT,
    CampaignFactory,
    LeadFactory,
    LeadSourceFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
    put_in_flight,
)

pytestmark = pytest.mark.django_db

Status = Lead.Status
# Saturday 7 March 2026, 15:00 UTC. New York moves its clocks the next day.
SATURDAY = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
MONDAY_9_IN_NEW_YORK = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
WEDNESDAY_NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def campaign_with_steps(**fields):
    campaign = CampaignFactory(**{"min_score": 50, "timezone": "America/New_York", **fields})
    SequenceStepFactory(campaign=campaign, position=1)
    SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    return campaign


def state(lead: Lead) -> tuple:
    lead.refresh_from_db()
    return lead.status, lead.status_reason, lead.next_send_at


def test_it_enrolls_leads_at_the_minimum_at_the_next_window_opening_in_the_campaigns_time_zone():
    campaign = campaign_with_steps()
    at_minimum = LeadFactory(campaign=campaign, score=50, blocked_reason=Lead.BlockedReason.OUTSIDE_WINDOW)
    above = LeadFactory(campaign=campaign, score=93)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 2, "qualified_not_enrolled": 0, "disqualified": 0}

    assert state(at_minimum) == (Status.IN_SEQUENCE, "Score 50 meets the minimum of 50; enrolled.",
                                 MONDAY_9_IN_NEW_YORK)
    assert state(above) == (Status.IN_SEQUENCE, "Score 93 meets the minimum of 50; enrolled.", MONDAY_9_IN_NEW_YORK)
    assert (at_minimum.status_changed_at, at_minimum.blocked_reason, at_minimum.current_step) == (SATURDAY, "", 0)


def test_it_makes_the_first_step_due_at_once_when_the_window_is_open():
    campaign = campaign_with_steps(timezone="UTC")
    lead = LeadFactory(campaign=campaign, score=80)

    leads_qualify(campaign=campaign, now=WEDNESDAY_NOON)

    assert state(lead)[2] == WEDNESDAY_NOON


def test_it_disqualifies_leads_below_the_minimum_with_the_reason():
    campaign = campaign_with_steps(min_score=60)
    below = LeadFactory(campaign=campaign, score=59, next_send_at=SATURDAY)
    zero = LeadFactory(campaign=campaign, score=0)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 0, "disqualified": 2}

    assert state(below) == (Status.DISQUALIFIED, "Score 59 is below the campaign's minimum of 60.", None)
    assert state(zero) == (Status.DISQUALIFIED, "Score 0 is below the campaign's minimum of 60.", None)


def test_it_leaves_unscored_leads_alone():
    campaign = campaign_with_steps()
    unscored = LeadFactory(campaign=campaign, score=None)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 0, "disqualified": 0}
    assert state(unscored) == (Status.NEW, "", None)


@pytest.mark.parametrize("other_status", [Status.IN_SEQUENCE, Status.PAUSED])
def test_it_holds_back_an_address_in_another_campaigns_active_sequence(other_status):
    campaign = campaign_with_steps()
    LeadFactory(email="anna@acme-gmbh.de", status=other_status, current_step=1)
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", score=80)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 1, "disqualified": 0}
    assert state(lead) == (Status.QUALIFIED,
                           "Score 80 qualifies; not enrolled: in another campaign's active sequence.", None)


def test_it_enrolls_an_address_whose_sequence_elsewhere_has_ended():
    campaign = campaign_with_steps()
    LeadFactory(email="anna@acme-gmbh.de", status=Status.DISQUALIFIED)
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", score=80)

    assert leads_qualify(campaign=campaign, now=SATURDAY)["enrolled"] == 1
    assert state(lead)[0] == Status.IN_SEQUENCE


@pytest.mark.parametrize("sent_status", [OutboundEmail.Status.SENT, IN_FLIGHT, OutboundEmail.Status.UNKNOWN])
def test_it_holds_back_an_address_we_have_already_mailed(sent_status):
    campaign = campaign_with_steps()
    sent = OutboundEmailFactory(lead=LeadFactory(email="anna@acme-gmbh.de", status=Status.NURTURE), status=sent_status)
    if sent_status == IN_FLIGHT:
        put_in_flight(sent, holder="worker-1:0a1b")
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", score=80)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 1, "disqualified": 0}
    assert state(lead) == (Status.QUALIFIED,
                           "Score 80 qualifies; not enrolled: already contacted by an earlier campaign.", None)


@pytest.mark.parametrize("unsent_status", [OutboundEmail.Status.FAILED, OutboundEmail.Status.CANCELLED])
def test_it_enrolls_an_address_whose_earlier_email_never_went_out(unsent_status):
    campaign = campaign_with_steps()
    OutboundEmailFactory(lead=LeadFactory(email="anna@acme-gmbh.de", status=Status.DEAD), status=unsent_status)
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", score=80)

    assert leads_qualify(campaign=campaign, now=SATURDAY)["enrolled"] == 1
    assert state(lead)[0] == Status.IN_SEQUENCE


def test_it_keeps_qualified_leads_waiting_while_the_campaign_has_no_steps():
    campaign = CampaignFactory(min_score=50)
    passing = LeadFactory(campaign=campaign, score=70)
    failing = LeadFactory(campaign=campaign, score=20)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 1, "disqualified": 1}
    assert state(passing) == (Status.QUALIFIED,
                              "Score 70 qualifies; not enrolled: waiting: the campaign has no sequence steps.", None)
    assert state(failing)[0] == Status.DISQUALIFIED

    SequenceStepFactory(campaign=campaign, position=1)
    assert leads_qualify(campaign=campaign, now=SATURDAY)["enrolled"] == 1
    assert state(passing)[0] == Status.IN_SEQUENCE


def test_it_decides_again_after_a_score_changes():
    campaign = campaign_with_steps()
    risen = LeadFactory(campaign=campaign, score=30)
    leads_qualify(campaign=campaign, now=SATURDAY)
    assert state(risen)[0] == Status.DISQUALIFIED

    Lead.objects.filter(pk=risen.pk).update(score=75)

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 1, "qualified_not_enrolled": 0, "disqualified": 0}
    assert state(risen) == (Status.IN_SEQUENCE, "Score 75 meets the minimum of 50; enrolled.", MONDAY_9_IN_NEW_YORK)


def test_it_counts_an_already_disqualified_lead_once():
    campaign = campaign_with_steps()
    LeadFactory(campaign=campaign, score=30)

    assert leads_qualify(campaign=campaign, now=SATURDAY)["disqualified"] == 1
    assert leads_qualify(campaign=campaign, now=SATURDAY)["disqualified"] == 0


def test_it_leaves_leads_already_in_a_sequence_or_decided_alone():
    campaign = campaign_with_steps()
    untouched = [
        LeadFactory(campaign=campaign, score=10, status=Status.IN_SEQUENCE, current_step=1, next_send_at=SATURDAY),
        LeadFactory(campaign=campaign, score=90, status=Status.INTERESTED, current_step=2),
        LeadFactory(campaign=campaign, score=90, status=Status.UNSUBSCRIBED),
        LeadFactory(campaign=campaign, score=90, status=Status.NEW, current_step=1),
    ]
    before = [state(lead) for lead in untouched]

    assert leads_qualify(campaign=campaign, now=SATURDAY) == {
        "enrolled": 0, "qualified_not_enrolled": 0, "disqualified": 0}
    assert [state(lead) for lead in untouched] == before


def test_it_decides_only_its_own_campaigns_leads():
    campaign = campaign_with_steps()
    other = LeadFactory(score=90, campaign=campaign_with_steps())

    leads_qualify(campaign=campaign, now=SATURDAY)

    assert state(other)[0] == Status.NEW


def queries_to_qualify(count: int) -> int:
    campaign = campaign_with_steps()
    LeadFactory(email="busy@acme-gmbh.de", status=Status.IN_SEQUENCE)
    OutboundEmailFactory(lead=LeadFactory(email="mailed@acme-gmbh.de"), status=OutboundEmail.Status.SENT)
    Lead.objects.bulk_create([
        Lead(campaign=campaign, email="busy@acme-gmbh.de", score=90),
        Lead(campaign=campaign, email="mailed@acme-gmbh.de", score=90),
        *(Lead(campaign=campaign, email=f"lead{n}@acme-gmbh.de", score=n % 100) for n in range(count - 2)),
    ])
    with CaptureQueriesContext(connection) as qualifying:
        result = leads_qualify(campaign=campaign, now=SATURDAY)
    assert result["qualified_not_enrolled"] == 2
    assert result["enrolled"] + result["disqualified"] == count - 2
    return len(qualifying)


def test_it_qualifies_in_the_same_number_of_queries_for_10_and_1000_leads():
    assert queries_to_qualify(10) == queries_to_qualify(1000)


def test_it_takes_harvested_leads_through_score_and_qualify_as_jobs(tmp_path):
    campaign = campaign_with_steps(min_score=60, timezone="UTC", icp_industries=["Software"],
                                   icp_title_keywords=["CTO"], icp_countries=["DE"])
    path = tmp_path / "fair.csv"
    path.write_text("email,title,industry,country\n"
                    "anna@acme-gmbh.de,CTO,Software,DE\n"
                    "ben@acme-gmbh.de,Intern,Retail,FR\n"
                    "info@gmail.com,CTO,Software,DE\n"
                    "broken,CTO,Software,DE\n", encoding="utf-8")
    LeadSourceFactory(campaign=campaign, name="Fair", config={"path": str(path)})

    harvested = run_job("harvest", campaign=campaign, scheduled_for=datetime(2026, 3, 2, 2, tzinfo=UTC))
    scored = run_job("score", campaign=campaign, scheduled_for=datetime(2026, 3, 2, 3, tzinfo=UTC))
    qualified = run_job("qualify", campaign=campaign, scheduled_for=datetime(2026, 3, 2, 3, 30, tzinfo=UTC))

    executions = {e.job: e for e in JobExecution.objects.filter(campaign=campaign)}
    assert [result.status for result in (harvested, scored, qualified)] == ["COMPLETED"] * 3
    assert executions["harvest"].counts == {"campaigns": 1, "read": 4, "created": 3, "updated": 0, "duplicate": 0,
                                            "suppressed": 0, "rejected": 1, "sources": 1, "sources_failed": 0}
    assert executions["score"].counts == {"campaigns": 1, "scored": 3, "changed": 3}
    assert executions["qualify"].counts == {"campaigns": 1, "enrolled": 1, "qualified_not_enrolled": 0,
                                            "disqualified": 2}
    statuses = dict(Lead.objects.filter(campaign=campaign).values_list("email", "status"))
    assert statuses == {"anna@acme-gmbh.de": Status.IN_SEQUENCE, "ben@acme-gmbh.de": Status.DISQUALIFIED,
                        "info@gmail.com": Status.DISQUALIFIED}
    rejection = HarvestRejection.objects.get(campaign=campaign)
    assert (rejection.line, rejection.job_execution) == (5, executions["harvest"])
    assert Lead.objects.get(email="anna@acme-gmbh.de").next_send_at is not None


def test_it_keeps_the_status_time_of_a_lead_held_for_the_same_reason_as_last_run():
    campaign = campaign_with_steps()
    LeadFactory(email="anna@acme-gmbh.de", status=Status.IN_SEQUENCE, current_step=1)
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", score=80)
    leads_qualify(campaign=campaign, now=SATURDAY)
    lead.refresh_from_db()
    first = lead.status_changed_at

    assert leads_qualify(campaign=campaign, now=MONDAY_9_IN_NEW_YORK)["qualified_not_enrolled"] == 1
    lead.refresh_from_db()
    assert (lead.status, lead.status_changed_at) == (Status.QUALIFIED, first)
