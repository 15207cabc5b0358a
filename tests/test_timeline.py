"""A lead's timeline: its whole story in order, one query per kind of record however long it is."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cam import timeline
from cam.followup import reply_follow_up
from cam.leads import lead_change_status, lead_unsubscribe
from cam.models import InboundEmail, Lead, OutboundEmail
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outreach_send
from cam.pipeline.scoring import leads_score
from tests.factories import (
    CampaignFactory,
    HumanAlertLogFactory,
    InboundEmailFactory,
    JobExecutionFactory,
    LeadFactory,
    LeadSourceFactory,
    MailboxFactory,
    ProviderEventFactory,
    SequenceStepFactory,
    SuppressionFactory,
)

pytestmark = pytest.mark.django_db


def a_lead_that_went_through_it_all() -> Lead:
    """Harvested from a source during a harvest run, scored, sent its first email through the real send
    path, answered positively (through the follow-up engine), alerted about, then unsubscribed."""
    mailbox = MailboxFactory(daily_cap=100, min_gap_seconds=0)
    campaign = CampaignFactory(name="Nordic CFOs", send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0,
                               send_end_hour=24, icp_industries=["software"], min_score=10)
    campaign.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=campaign, position=1, subject_template="{{ company }} and hand-offs",
                        body_template="Hi {{ first_name }}, a quick question about hand-offs.")
    source = LeadSourceFactory(campaign=campaign, name="Fintech list")
    run = JobExecutionFactory(job="harvest", campaign=campaign, started_at=timezone.now() - timedelta(hours=2),
                              finished_at=timezone.now() - timedelta(hours=1), status="COMPLETED")
    lead = LeadFactory(campaign=campaign, source=source, first_name="Anna", company="Brightlane",
                       harvested_at=run.started_at + timedelta(minutes=5), raw_data={"email": "x"})
    leads_score(campaign=campaign)
    lead.refresh_from_db()
    Lead.objects.filter(pk=lead.pk).update(status=Lead.Status.IN_SEQUENCE,
                                           next_send_at=timezone.now() - timedelta(minutes=1))
    outreach_plan()
    assert outreach_send(inline=True)["sent"] == 1
    email = OutboundEmail.objects.get(lead=lead)
    ProviderEventFactory(outbound_email=email, event_type="delivered")
    reply = InboundEmailFactory(mailbox=mailbox, outbound_email=email, lead=lead, from_email=lead.email,
                                from_name="Anna", category=InboundEmail.Category.POSITIVE, confidence=0.93,
                                classification_reasons=["asks for a call"], classified_by="classifier",
                                classified_at=timezone.now(), received_at=timezone.now(),
                                new_text="Yes, let's talk on Tuesday.")
    reply_follow_up(inbound=reply, actor="system:reply")
    HumanAlertLogFactory(lead=lead, inbound_email=reply, title="Positive reply from Anna",
                         recipients="sales@cam.test", sent_successfully=True, sent_at=timezone.now())
    lead.refresh_from_db()
    lead_unsubscribe(lead=lead, source="asked by phone", actor="staff:maria")
    return lead


def test_it_tells_the_whole_story_newest_first():
    lead = a_lead_that_went_through_it_all()

    entries = timeline.lead_timeline(lead)

    kinds = [entry.kind for entry in entries]
    assert kinds[-1] == timeline.ARRIVED  # the oldest last
    for kind in (timeline.SCORED, timeline.PLANNED, timeline.SENT, timeline.PROVIDER, timeline.REPLY,
                 timeline.STATUS, timeline.ALERT, timeline.STOPPED):
        assert kind in kinds, kind
    assert [entry.at for entry in entries] == sorted((entry.at for entry in entries), reverse=True)

    arrived = entries[-1]
    assert "Source: Fintech list" in " ".join(arrived.detail)
    assert "Harvest run" in " ".join(arrived.detail)
    [sent] = [entry for entry in entries if entry.kind == timeline.SENT]
    assert sent.title == "Step 1 sent: Brightlane and hand-offs"
    assert "Hi Anna, a quick question about hand-offs." in sent.body  # as it was sent, rendered
    [reply] = [entry for entry in entries if entry.kind == timeline.REPLY]
    assert reply.status == "POSITIVE" and reply.body == "Yes, let's talk on Tuesday."
    assert any("93 % sure" in line for line in reply.detail)
    changes = [(entry.title, entry.actor) for entry in entries if entry.kind == timeline.STATUS]
    assert ("Interested → Unsubscribed", "maria") in changes
    assert any(title.endswith("→ Interested") for title, _ in changes)
    assert any(entry.title.startswith("Suppressed: ") for entry in entries if entry.kind == timeline.STOPPED)

    oldest_first = timeline.lead_timeline(lead, oldest_first=True)
    assert [entry.kind for entry in oldest_first] == kinds[::-1]


def test_a_lead_held_back_says_why_now():
    lead = LeadFactory(status=Lead.Status.IN_SEQUENCE, blocked_reason=Lead.BlockedReason.MAILBOX_CAP,
                       next_send_at=timezone.now() + timedelta(hours=3))
    [held] = [entry for entry in timeline.lead_timeline(lead) if entry.kind == timeline.HELD]
    assert held.title == "Held back now: Mailbox daily cap reached"


def test_a_domain_suppression_covering_a_subdomain_is_shown():
    lead = LeadFactory(email="anna@mail.brightlane.test")
    SuppressionFactory(email="", domain="brightlane.test")
    assert [entry.title for entry in timeline.lead_timeline(lead) if entry.kind == timeline.STOPPED] == [
        "Suppressed: the domain brightlane.test"]


def story(size: int) -> Lead:
    lead = LeadFactory(status=Lead.Status.IN_SEQUENCE)
    mailbox = MailboxFactory()
    for n in range(size):
        step = SequenceStepFactory(campaign=lead.campaign, position=n + 1)
        email = OutboundEmail.objects.create(lead=lead, step=step, campaign=lead.campaign, mailbox=mailbox,
                                             to_email=lead.email, message_id=f"<story.{size}.{n}@cam.test>",
                                             status=OutboundEmail.Status.SENT, sent_at=timezone.now())
        ProviderEventFactory(outbound_email=email)
        reply = InboundEmailFactory(mailbox=mailbox, outbound_email=email, lead=lead, category="NEUTRAL")
        HumanAlertLogFactory(lead=lead, inbound_email=reply)
        lead_change_status(lead=lead, to_status=[Lead.Status.NURTURE, Lead.Status.INTERESTED][n % 2],
                           actor="staff:anna", reason="test")
    SuppressionFactory(email=lead.email)
    return lead


@pytest.mark.parametrize("size", [1, 50])
def test_it_costs_one_query_per_kind_of_record_however_long_the_story(django_assert_num_queries, size):
    lead = story(size)
    # The lead (with its source and campaign), the harvest run (none: never harvested), status changes,
    # emails, provider reports, replies, alerts, suppressions.
    with django_assert_num_queries(7):
        entries = timeline.lead_timeline(lead)
    assert len([entry for entry in entries if entry.kind == timeline.REPLY]) == size
