"""Status changes made by a person (``cam.leads.leads_change_status``): the outcomes a conversation reaches —
a meeting booked, won, lost — and the rule that an unsubscribed or bounced lead leaves only once no
suppression covers its address; and the address of a lead that was mailed staying as it is."""

from __future__ import annotations

import pytest
from django.utils import timezone

from cam.leads import (
    EmailFixed,
    TransitionRefused,
    lead_change_status,
    lead_email_fixed,
    lead_save_profile,
    lead_unsubscribe,
    leads_change_status,
)
from cam.models import Lead, LeadEvent, OutboundEmail, Suppression
from cam.suppressions import suppression_remove
from tests.factories import IN_FLIGHT, LeadFactory, OutboundEmailFactory, SuppressionFactory, put_in_flight

pytestmark = pytest.mark.django_db
Status = Lead.Status
Email = OutboundEmail.Status
ADDRESS = "anna@mail.brightlane.example.com"


def events(lead: Lead) -> list[tuple[str, str, str, str]]:
    return list(LeadEvent.objects.filter(lead=lead).order_by("id").values_list("from_status", "to_status", "actor",
                                                                               "reason"))


# -- meeting booked, won, lost ----------------------------------------------------------------------------

def test_a_conversation_goes_on_to_a_meeting_and_from_there_to_won_each_step_recorded():
    lead = LeadFactory(status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    waiting = OutboundEmailFactory(lead=lead, status=Email.PENDING)

    lead_change_status(lead=lead, to_status=Status.INTERESTED, actor="staff:alex", reason="Called back")
    lead_change_status(lead=lead, to_status=Status.MEETING_BOOKED, actor="staff:alex", reason="Tuesday 10:00")
    lead_change_status(lead=lead, to_status=Status.WON, actor="staff:kim", reason="Signed")

    assert (lead.status, lead.status_reason, lead.next_send_at) == (Status.WON, "Signed", None)
    assert events(lead) == [("IN_SEQUENCE", "INTERESTED", "staff:alex", "Called back"),
                            ("INTERESTED", "MEETING_BOOKED", "staff:alex", "Tuesday 10:00"),
                            ("MEETING_BOOKED", "WON", "staff:kim", "Signed")]
    waiting.refresh_from_db()
    assert waiting.status == Email.CANCELLED


@pytest.mark.parametrize("to_status", [Status.WON, Status.LOST, Status.NOT_INTERESTED])
def test_a_meeting_booked_leads_on_to_an_outcome(to_status):
    lead = LeadFactory(status=Status.MEETING_BOOKED)

    assert lead_change_status(lead=lead, to_status=to_status, actor="staff:alex") is True
    assert lead.status == to_status


@pytest.mark.parametrize("status", [Status.NEW, Status.QUALIFIED, Status.DISQUALIFIED])
def test_no_meeting_is_booked_with_a_lead_never_contacted(status):
    lead = LeadFactory(status=status)

    with pytest.raises(TransitionRefused, match=f"cannot go from {status} to MEETING_BOOKED"):
        lead_change_status(lead=lead, to_status=Status.MEETING_BOOKED, actor="staff:alex")
    assert Lead.objects.get(pk=lead.pk).status == status


def test_a_meeting_is_not_a_sale_an_unsubscribe_after_it_stops_the_lead():
    lead = LeadFactory(email=ADDRESS, status=Status.MEETING_BOOKED)

    lead_unsubscribe(lead=lead, source="link")

    assert lead.status == Status.UNSUBSCRIBED


# -- leaving UNSUBSCRIBED or BOUNCED ------------------------------------------------------------------------

@pytest.mark.parametrize("final", [Status.UNSUBSCRIBED, Status.BOUNCED])
@pytest.mark.parametrize("suppression", [{"email": ADDRESS}, {"email": "", "domain": "brightlane.example.com"}],
                         ids=["address", "parent domain"])
def test_a_lead_stays_unsubscribed_or_bounced_while_a_suppression_covers_its_address(final, suppression):
    lead = LeadFactory(email=ADDRESS, status=final)
    SuppressionFactory(**suppression)

    with pytest.raises(TransitionRefused) as refused:
        lead_change_status(lead=lead, to_status=Status.INTERESTED, actor="staff:alex", reason="Wrote back")

    assert str(refused.value).startswith(f"A lead cannot leave {final} while its address is suppressed (")
    assert str(refused.value).endswith("Remove the suppression first, on its own page under Suppressions, then "
                                       "change the status.")
    assert Lead.objects.get(pk=lead.pk).status == final
    assert events(lead) == []


def test_a_bounced_lead_may_still_unsubscribe_while_suppressed():
    lead = LeadFactory(email=ADDRESS, status=Status.BOUNCED)
    SuppressionFactory(email=ADDRESS)

    assert lead_change_status(lead=lead, to_status=Status.UNSUBSCRIBED, actor="staff:alex", reason="Asked") is True
    assert lead.status == Status.UNSUBSCRIBED


def test_once_the_suppression_is_removed_the_lead_leaves_for_a_conversation_never_for_a_sequence():
    lead = LeadFactory(email=ADDRESS, status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    lead_unsubscribe(lead=lead, source="link")
    with pytest.raises(TransitionRefused, match="while its address is suppressed"):
        lead_change_status(lead=lead, to_status=Status.INTERESTED, actor="staff:alex")

    suppression_remove(suppression=Suppression.objects.get(email=ADDRESS))
    with pytest.raises(TransitionRefused, match="cannot go from UNSUBSCRIBED to IN_SEQUENCE"):
        lead_change_status(lead=lead, to_status=Status.IN_SEQUENCE, actor="staff:alex")
    changed = lead_change_status(lead=lead, to_status=Status.INTERESTED, actor="staff:alex",
                                 reason="Wrote back: wants a call after all")

    assert changed is True
    assert (lead.status, lead.next_send_at, lead.blocked_reason) == (Status.INTERESTED, None, "")
    assert events(lead)[-1] == ("UNSUBSCRIBED", "INTERESTED", "staff:alex", "Wrote back: wants a call after all")


# -- many at once -------------------------------------------------------------------------------------------

def test_many_leads_change_each_by_the_rules_and_the_refused_say_why():
    moving = LeadFactory.create_batch(3, status=Status.IN_SEQUENCE)
    already = LeadFactory(status=Status.NOT_INTERESTED)
    fresh = LeadFactory(status=Status.NEW)
    held = LeadFactory(email=ADDRESS, status=Status.UNSUBSCRIBED)
    SuppressionFactory(email=ADDRESS)

    changes = leads_change_status(lead_ids=[lead.pk for lead in (*moving, already, fresh, held)],
                                  to_status=Status.NOT_INTERESTED, actor="staff:alex", reason="Said no")

    assert changes.changed == [lead.pk for lead in moving]
    assert changes.unchanged == [already.pk]
    assert {pk: str(refusal) for pk, refusal in changes.refused.items()} == {
        fresh.pk: "A lead cannot go from NEW to NOT_INTERESTED. Allowed from NEW: DISQUALIFIED, DEAD, UNSUBSCRIBED, "
                  "BOUNCED.",
        held.pk: f"A lead cannot leave UNSUBSCRIBED while its address is suppressed ({ADDRESS} is on the suppression "
                 f"list). Remove the suppression first, on its own page under Suppressions, then change the status."}
    assert changes.addresses[held.pk] == ADDRESS
    assert set(Lead.objects.filter(pk__in=[lead.pk for lead in moving]).values_list("status", "status_reason")) == {
        (Status.NOT_INTERESTED, "Said no")}
    assert LeadEvent.objects.filter(to_status=Status.NOT_INTERESTED).count() == 3


@pytest.mark.parametrize("size", [1, 3])
def test_many_leads_change_in_the_same_number_of_queries_as_one(size, django_assert_num_queries):
    leads = LeadFactory.create_batch(size, status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    for lead in leads:
        OutboundEmailFactory(lead=lead, status=Email.PENDING)
    unsubscribed = LeadFactory.create_batch(size, status=Status.UNSUBSCRIBED)  # each address checked, in one query

    # The leads locked, the suppressions of the addresses leaving UNSUBSCRIBED, the events, the leads, the emails
    # (locked, then cancelled: the in-flight marks are read only when a sender has one of them claimed);
    # and the savepoint around them, taken and released.
    with django_assert_num_queries(8):
        changes = leads_change_status(lead_ids=[lead.pk for lead in (*leads, *unsubscribed)],
                                      to_status=Status.NURTURE, actor="staff:alex", reason="Later")

    assert len(changes.changed) == 2 * size
    assert OutboundEmail.objects.filter(status=Email.CANCELLED).count() == size


# -- the address of a lead that was mailed --------------------------------------------------------------------

@pytest.mark.parametrize(("emails", "fixed"), [
    ([], False),
    ([Email.PENDING, Email.FAILED, Email.CANCELLED], False),
    ([Email.SENT], True),
    ([IN_FLIGHT], True),
    ([Email.UNKNOWN], True),
])
def test_an_address_is_fixed_once_mail_went_or_may_have_gone_to_it(emails, fixed):
    lead = LeadFactory(email="anna@brightlane.example.com")
    for status in emails:
        email = OutboundEmailFactory(lead=lead, status=status)
        if status == IN_FLIGHT:
            put_in_flight(email, holder="worker-1:0a1b")
    lead.email = "anna.schmidt@brightlane.example.com"

    assert lead_email_fixed(lead=lead) is fixed
    if fixed:
        with pytest.raises(EmailFixed, match="mail was already sent to it"):
            lead_save_profile(lead=lead, fields=["email", "company"])
    else:
        lead_save_profile(lead=lead, fields=["email"])
    assert Lead.objects.get(pk=lead.pk).email == ("anna@brightlane.example.com" if fixed
                                                  else "anna.schmidt@brightlane.example.com")


def test_a_profile_save_writes_only_its_fields_and_never_the_status():
    lead = LeadFactory(status=Status.IN_SEQUENCE, company="Brightlane")
    OutboundEmailFactory(lead=lead, status=Email.SENT)
    Lead.objects.filter(pk=lead.pk).update(status=Status.INTERESTED)  # a reply, meanwhile
    lead.company = "Brightlane GmbH"

    lead_save_profile(lead=lead, fields=["company"])
    with pytest.raises(ValueError, match="status change through the status services"):
        lead_save_profile(lead=lead, fields=["status"])

    assert Lead.objects.filter(pk=lead.pk).values_list("status", "company").get() == (
        Status.INTERESTED, "Brightlane GmbH")


def test_a_profile_save_with_nothing_changed_writes_nothing(django_assert_num_queries):
    lead = LeadFactory()

    with django_assert_num_queries(0):
        lead_save_profile(lead=lead, fields=[])
