"""A won lead keeps WON when its address is later unsubscribed, bounced or reported as spam, through any
door: the address is suppressed and nothing more is sent to it, anywhere, but the sale stays a sale."""

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from cam.leads import TransitionRefused, lead_change_status, lead_mark_bounced, lead_mark_complained, lead_unsubscribe
from cam.models import Lead, LeadEvent, OutboundEmail, Suppression
from cam.outreach.events import provider_event_record
from cam.outreach.unsubscribe import unsubscribe_url
from cam.suppressions import suppressed_addresses
from tests.factories import CampaignFactory, LeadFactory, OutboundEmailFactory

pytestmark = pytest.mark.django_db
Status = Lead.Status
Email = OutboundEmail.Status
ADDRESS = "anna@brightlane.example.com"


@pytest.fixture
def won():
    lead = LeadFactory(email=ADDRESS, status=Status.IN_SEQUENCE, current_step=1)
    lead_change_status(lead=lead, to_status=Status.WON, actor="staff:alex", reason="signed on the phone")
    return lead


@pytest.fixture
def elsewhere():
    """The same person, still in another campaign's sequence, with an email waiting."""
    lead = LeadFactory(email=ADDRESS, campaign=CampaignFactory(), status=Status.IN_SEQUENCE, current_step=1,
                       next_send_at=timezone.now())
    return lead, OutboundEmailFactory(lead=lead, status=Email.PENDING)


def assert_kept_and_stopped(won: Lead, elsewhere, *, stopped: str, reason: str) -> None:
    won.refresh_from_db()
    assert won.status == Status.WON
    assert won.status_reason == "signed on the phone"
    assert Suppression.objects.get(email=ADDRESS).reason == reason
    lead, waiting = elsewhere
    lead.refresh_from_db()
    waiting.refresh_from_db()
    assert (lead.status, lead.next_send_at, waiting.status) == (stopped, None, Email.CANCELLED)
    last = LeadEvent.objects.filter(lead=won).latest("id")
    assert (last.from_status, last.to_status) == (Status.WON, Status.WON)
    assert "the lead stays WON: a sale, which what later becomes of the address does not undo" in last.reason
    assert f"(it would otherwise have become {stopped})" in last.reason


@pytest.mark.parametrize(("stop", "stopped", "reason"), [
    (lead_unsubscribe, Status.UNSUBSCRIBED, Suppression.Reason.UNSUBSCRIBED),
    (lead_mark_complained, Status.UNSUBSCRIBED, Suppression.Reason.COMPLAINT),
    (lead_mark_bounced, Status.BOUNCED, Suppression.Reason.HARD_BOUNCE),
])
def test_each_address_stop_keeps_won_and_suppresses_the_address(won, elsewhere, stop, stopped, reason):
    assert stop(lead=won, source="test") is True

    assert_kept_and_stopped(won, elsewhere, stopped=stopped, reason=reason)
    assert stop(lead=won, source="test") is False  # again: nothing left to change


def test_the_unsubscribe_link_keeps_won_and_then_says_the_address_is_off_the_list(won, elsewhere):
    path = urlsplit(unsubscribe_url(won)).path
    client = Client(enforce_csrf_checks=True)

    response = client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert_kept_and_stopped(won, elsewhere, stopped=Status.UNSUBSCRIBED, reason=Suppression.Reason.UNSUBSCRIBED)
    assert "already off our list" in client.get(path).content.decode()


@pytest.mark.parametrize(("event_type", "stopped", "reason"), [
    ("bounced", Status.BOUNCED, Suppression.Reason.HARD_BOUNCE),
    ("complained", Status.UNSUBSCRIBED, Suppression.Reason.COMPLAINT),
])
def test_a_provider_event_keeps_won(won, elsewhere, event_type, stopped, reason):
    OutboundEmailFactory(lead=won, status=Email.SENT, provider="resend", provider_message_id="re-1",
                         sent_at=timezone.now())

    provider_event_record(provider="resend", event_id="msg_1", event_type=event_type, provider_message_id="re-1",
                          recipient=ADDRESS, description="", payload={}, occurred_at=None)

    assert_kept_and_stopped(won, elsewhere, stopped=stopped, reason=reason)


def test_the_suppression_that_keeps_mail_from_the_address_is_the_one_planning_and_sending_read(won):
    lead_unsubscribe(lead=won, source="test")

    assert suppressed_addresses([ADDRESS]) == {ADDRESS: f"{ADDRESS} is on the suppression list"}


@pytest.mark.parametrize("to_status", [Status.UNSUBSCRIBED, Status.BOUNCED])
def test_a_person_cannot_turn_a_sale_into_an_address_stop(won, to_status):
    with pytest.raises(TransitionRefused, match="add the address to the suppression list"):
        lead_change_status(lead=won, to_status=to_status, actor="staff:alex")

    assert Lead.objects.get(pk=won.pk).status == Status.WON
