"""A reply on a closed lead does not reopen it or move it sideways — except where it should.

Closed: every status that is neither in a sequence nor waiting for one (``cam.leads.CLOSED_STATUSES``).
An unsubscribe, complaint or hard bounce still suppresses the address and stops everything; a warm
reply on a lead closed without a conversation or a sale reopens the conversation; everything else
leaves the lead where it is, with a lead event saying so.
"""

from datetime import date, timedelta
from email.message import EmailMessage

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.followup import leads_resume_paused, reply_follow_up
from cam.inbox.processing import replies_process, reply_reclassify
from cam.leads import CLOSED_STATUSES, FINAL_STATUSES, OPEN_STATUSES, lead_change_status
from cam.models import HumanAlertLog, InboundEmail, Lead, LeadEvent, OutboundEmail, Suppression
from tests.factories import (
    CampaignFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
)

pytestmark = pytest.mark.django_db
Status = Lead.Status
Category = InboundEmail.Category

CLOSED = [Status.INTERESTED, Status.REFERRED, Status.MEETING_BOOKED, Status.NOT_INTERESTED, Status.NURTURE,
          Status.DEAD, Status.WON, Status.LOST]
REKINDLED = (Status.NOT_INTERESTED, Status.NURTURE, Status.DEAD)
WARM = (Category.POSITIVE, Category.QUESTION, Category.REFERRAL)
ADDRESS_STOPS = (Category.UNSUBSCRIBE, Category.COMPLAINT, Category.BOUNCE_HARD)
CONVERSATION = [Category.POSITIVE, Category.QUESTION, Category.REFERRAL, Category.NEGATIVE, Category.NEUTRAL,
                Category.OUT_OF_OFFICE, Category.BOUNCE_SOFT, Category.AUTO_REPLY]


def expected(category: str, closed: str) -> str:
    """What a reply of ``category`` does to a lead found ``closed``."""
    if category in ADDRESS_STOPS and closed == Status.WON:
        return Status.WON  # a sale stays; the address is suppressed
    if category in (Category.UNSUBSCRIBE, Category.COMPLAINT):
        return Status.UNSUBSCRIBED
    if category == Category.BOUNCE_HARD:
        return Status.BOUNCED
    if category in (Category.POSITIVE, Category.QUESTION) and closed in REKINDLED:
        return Status.INTERESTED
    if category == Category.REFERRAL and closed in REKINDLED:
        return Status.REFERRED
    return closed


@pytest.fixture
def sent():
    """A lead that got step 1 of a two-step sequence."""
    campaign = CampaignFactory(out_of_office_days=5, soft_bounce_limit=2)
    mailbox = MailboxFactory(from_email="alex@outreach.example.com")
    first = SequenceStepFactory(campaign=campaign, position=1)
    SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    lead = LeadFactory(campaign=campaign, email="anna@brightlane.example.com", first_name="Anna",
                       status=Status.IN_SEQUENCE, current_step=1, mailbox=mailbox,
                       next_send_at=timezone.now() + timedelta(days=2),
                       last_contacted_at=timezone.now() - timedelta(days=1))
    return OutboundEmailFactory(lead=lead, campaign=campaign, step=first, mailbox=mailbox, status="SENT",
                                subject="Brightlane and fewer hand-offs", sent_at=timezone.now() - timedelta(days=1),
                                message_id="<first.4711@outreach.example.com>")


def close(lead: Lead, status: str) -> Lead:
    """Close ``lead`` as a person would (every closed status is reachable by hand from a sequence)."""
    lead_change_status(lead=lead, to_status=status, actor="staff:alex", reason="by hand")
    assert lead.status == status
    return lead


def matched(sent: OutboundEmail, category: str = "", text: str = "Thanks for your note.") -> InboundEmail:
    return InboundEmailFactory(mailbox=sent.mailbox, lead=sent.lead, outbound_email=sent, category=category,
                               new_text=text, from_email=sent.to_email, processed_at=timezone.now(),
                               referral_email="jonas@brightlane.example.com" if category == "REFERRAL" else "")


def check(sent: OutboundEmail, inbound: InboundEmail, category: str, closed: str, actor: str) -> None:
    """The lead is where ``expected`` says, and nothing was put back into a sequence."""
    lead = Lead.objects.get(pk=sent.lead_id)
    status = expected(category, closed)
    assert lead.status == status
    assert (lead.next_send_at, lead.paused_until) == (None, None)
    sent.refresh_from_db()
    assert (sent.status, sent.soft_bounces, sent.next_attempt_at) == ("SENT", 0, None)
    assert not OutboundEmail.objects.filter(status__in=["PENDING", "RETRY"]).exists()
    assert HumanAlertLog.objects.filter(inbound_email=inbound).count() == (category in WARM)
    last = LeadEvent.objects.filter(lead=lead).order_by("-id").first()
    if category == Category.AUTO_REPLY:  # an automatic reply changes nothing, so there is nothing to record
        assert (last.actor, last.inbound_email) == ("staff:alex", None)
        return
    assert (last.from_status, last.to_status, last.actor, last.inbound_email_id) == (closed, status, actor, inbound.pk)
    if category in ADDRESS_STOPS:
        assert Suppression.objects.filter(email=lead.email).exists()
        if status == closed:
            assert f"the lead stays {closed}: a sale, which what later becomes of the address does not undo" \
                   in last.reason
    elif status == closed:
        assert f"the lead stays {closed}: a closed status, which a reply does not reopen or change" in last.reason


def test_the_closed_statuses_are_every_status_outside_a_sequence_or_waiting_for_one():
    assert set(CLOSED_STATUSES) == {*CLOSED, *FINAL_STATUSES}
    assert set(OPEN_STATUSES) | set(CLOSED_STATUSES) == set(Status.values)


# -- every handler × every closed status -------------------------------------------------------------

@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("category", [*CONVERSATION, Category.UNSUBSCRIBE, Category.COMPLAINT,
                                      Category.BOUNCE_HARD])
def test_a_reply_on_a_closed_lead_through_the_follow_up(sent, category, closed):
    close(sent.lead, closed)
    inbound = matched(sent, category)

    reply_follow_up(inbound=inbound, actor="system:classifier")

    check(sent, inbound, category, closed, "system:classifier")


@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("category", CONVERSATION)
def test_staff_reclassifying_in_the_admin_respects_a_closed_lead(sent, admin_client, category, closed):
    close(sent.lead, closed)
    inbound = matched(sent, Category.AUTO_REPLY)

    response = admin_client.post(reverse("admin:cam_inboundemail_changelist"),
                                 {"action": f"reclassify_{category.lower()}", "_selected_action": [inbound.pk]})

    assert response.status_code == 302
    assert InboundEmail.objects.get(pk=inbound.pk).category == category
    check(sent, inbound, category, closed, f"staff:{admin_client.user.username}")


@pytest.mark.parametrize("category", ADDRESS_STOPS)
def test_an_address_stop_keeps_a_won_lead_won_and_stops_its_address_everywhere(sent, category):
    close(sent.lead, Status.WON)
    elsewhere = LeadFactory(email=sent.to_email, status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    waiting = OutboundEmailFactory(lead=elsewhere, status="PENDING")
    inbound = matched(sent, category)

    reply_reclassify(inbound=inbound, category=category, by="staff:alex")

    stopped = Status.BOUNCED if category == Category.BOUNCE_HARD else Status.UNSUBSCRIBED
    assert Lead.objects.get(pk=sent.lead_id).status == Status.WON
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.next_send_at) == (stopped, None)
    waiting.refresh_from_db()
    assert waiting.status == "CANCELLED"
    assert Suppression.objects.filter(email=sent.to_email).exists()


# -- the cases from review ---------------------------------------------------------------------------

@pytest.mark.parametrize("closed", [Status.DEAD, Status.WON])
def test_an_absence_never_pauses_a_closed_lead_nor_does_the_pause_end_bring_it_back(sent, closed):
    close(sent.lead, closed)
    inbound = matched(sent)

    reply_reclassify(inbound=inbound, category=Category.OUT_OF_OFFICE, by="staff:alex")

    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.paused_until, lead.next_send_at) == (closed, None, None)
    event = LeadEvent.objects.filter(lead=lead).order_by("-id").first()
    assert (event.from_status, event.to_status) == (closed, closed)
    assert f"the lead stays {closed}" in event.reason and "would otherwise have become PAUSED" in event.reason
    assert leads_resume_paused(now=timezone.now() + timedelta(days=30)) == 0
    assert Lead.objects.get(pk=lead.pk).status == closed


def test_a_classified_absence_on_a_dead_lead_leaves_it_dead(sent):
    close(sent.lead, Status.DEAD)
    message = EmailMessage()
    back = date.today() + timedelta(days=10)
    message["From"] = f"Anna Schmidt <{sent.to_email}>"
    message["To"] = "alex@outreach.example.com"
    message["Subject"] = f"Out of Office: {sent.subject}"
    message["Message-ID"] = "<ooo.1@brightlane.example.com>"
    message["In-Reply-To"] = sent.message_id
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(f"I am out of the office with limited access to email. I will be back on "
                        f"{back.strftime('%d %B %Y')}.")
    InboundEmailFactory(mailbox=sent.mailbox, raw_message=message.as_bytes(), from_email=sent.to_email,
                        message_id=message["Message-ID"], in_reply_to=sent.message_id, references=sent.message_id,
                        subject=message["Subject"], new_text="")

    assert replies_process()["out_of_office"] == 1

    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.paused_until) == (Status.DEAD, None)


def test_a_negative_reply_leaves_a_won_lead_won(sent):
    close(sent.lead, Status.WON)
    inbound = matched(sent, text="No thanks, not interested.")

    reply_reclassify(inbound=inbound, category=Category.NEGATIVE, by="staff:alex")

    assert Lead.objects.get(pk=sent.lead_id).status == Status.WON


def test_a_positive_reply_on_a_not_interested_lead_reopens_the_conversation_and_alerts(sent):
    close(sent.lead, Status.NOT_INTERESTED)
    inbound = matched(sent, Category.POSITIVE, text="Thought about it again - let's talk.")

    reply_follow_up(inbound=inbound, actor="system:classifier")

    lead = Lead.objects.get(pk=sent.lead_id)
    assert lead.status == Status.INTERESTED
    event = LeadEvent.objects.filter(lead=lead).order_by("-id").first()
    assert (event.from_status, event.to_status) == (Status.NOT_INTERESTED, Status.INTERESTED)
    assert HumanAlertLog.objects.get(inbound_email=inbound).alert_type == "POSITIVE_REPLY"


def test_a_positive_reply_on_a_won_lead_keeps_it_won_and_still_alerts(sent):
    close(sent.lead, Status.WON)
    inbound = matched(sent, Category.POSITIVE, text="Great working with you, one more thing...")

    reply_follow_up(inbound=inbound, actor="system:classifier")

    assert Lead.objects.get(pk=sent.lead_id).status == Status.WON
    assert HumanAlertLog.objects.filter(inbound_email=inbound).count() == 1


# -- reclassifying corrects the reply's own follow-up ----------------------------------------------

def test_reclassifying_a_reply_that_reopened_a_closed_lead_puts_it_back(sent):
    close(sent.lead, Status.DEAD)
    inbound = matched(sent, Category.POSITIVE)
    reply_follow_up(inbound=inbound, actor="system:classifier")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.INTERESTED

    reply_reclassify(inbound=inbound, category=Category.OUT_OF_OFFICE, by="staff:alex")

    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.paused_until) == (Status.DEAD, None)
    event = LeadEvent.objects.filter(lead=lead).order_by("-id").first()
    assert (event.from_status, event.to_status, event.actor) == (Status.INTERESTED, Status.DEAD, "staff:alex")

    reply_reclassify(inbound=inbound, category=Category.REFERRAL, by="staff:alex")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.REFERRED
    reply_reclassify(inbound=inbound, category=Category.AUTO_REPLY, by="staff:alex")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.DEAD


def test_reclassifying_a_reply_whose_own_follow_up_closed_the_lead_applies_the_new_one(sent):
    inbound = matched(sent, Category.POSITIVE)
    reply_follow_up(inbound=inbound, actor="system:classifier")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.INTERESTED

    reply_reclassify(inbound=inbound, category=Category.NEGATIVE, by="staff:alex")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.NOT_INTERESTED
    reply_reclassify(inbound=inbound, category=Category.OUT_OF_OFFICE, by="staff:alex")
    lead = Lead.objects.get(pk=sent.lead_id)
    assert lead.status == Status.PAUSED and lead.paused_until is not None


def test_a_person_closing_the_lead_after_the_reply_is_not_undone_by_a_reclassification(sent):
    inbound = matched(sent, Category.POSITIVE)
    reply_follow_up(inbound=inbound, actor="system:classifier")
    close(sent.lead, Status.WON)

    reply_reclassify(inbound=inbound, category=Category.OUT_OF_OFFICE, by="staff:alex")

    assert Lead.objects.get(pk=sent.lead_id).status == Status.WON


# -- replies on leads not in a sequence yet ------------------------------------------------------------

@pytest.mark.parametrize("waiting", [Status.NEW, Status.QUALIFIED, Status.DISQUALIFIED])
def test_an_absence_does_not_pause_a_lead_that_is_not_in_a_sequence(sent, waiting):
    Lead.objects.filter(pk=sent.lead_id).update(status=waiting, current_step=0, next_send_at=None)
    inbound = matched(sent, Category.OUT_OF_OFFICE)

    reply_follow_up(inbound=inbound, actor="system:classifier")

    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.paused_until) == (waiting, None)
    assert "not in a sequence, so there is nothing to pause" in LeadEvent.objects.get(lead=lead).reason
    assert leads_resume_paused(now=timezone.now() + timedelta(days=30)) == 0


@pytest.mark.parametrize(("category", "status"), [(Category.POSITIVE, Status.INTERESTED),
                                                  (Category.NEGATIVE, Status.NOT_INTERESTED),
                                                  (Category.NEUTRAL, Status.NURTURE)])
def test_a_person_replying_before_the_sequence_gets_the_whole_follow_up(sent, category, status):
    Lead.objects.filter(pk=sent.lead_id).update(status=Status.QUALIFIED, current_step=0, next_send_at=None)
    inbound = matched(sent, category)

    reply_follow_up(inbound=inbound, actor="system:classifier")

    assert Lead.objects.get(pk=sent.lead_id).status == status


# -- the end of a pause ------------------------------------------------------------------------------

def test_only_leads_still_paused_with_their_pause_over_are_resumed():
    now = timezone.now()
    due = LeadFactory(status=Status.PAUSED, paused_until=now - timedelta(minutes=1))
    later = LeadFactory(status=Status.PAUSED, paused_until=now + timedelta(days=1))
    open_ended = LeadFactory(status=Status.PAUSED, paused_until=None)
    # Statuses with a stale pause date (set by hand, or left by an older version): never resumed.
    stale = {status: LeadFactory(status=status, paused_until=now - timedelta(days=1))
             for status in Status.values if status != Status.PAUSED}

    assert leads_resume_paused(now=now) == 1

    assert Lead.objects.get(pk=due.pk).status == Status.IN_SEQUENCE
    assert Lead.objects.get(pk=later.pk).status == Status.PAUSED
    assert Lead.objects.get(pk=open_ended.pk).status == Status.PAUSED
    assert {status: Lead.objects.get(pk=lead.pk).status for status, lead in stale.items()} == {
        status: status for status in stale}
    assert list(LeadEvent.objects.values_list("lead_id", "from_status", "to_status")) == [
        (due.pk, Status.PAUSED, Status.IN_SEQUENCE)]


def test_a_paused_lead_closed_by_a_person_is_not_resumed(sent):
    inbound = matched(sent, Category.OUT_OF_OFFICE)
    reply_follow_up(inbound=inbound, actor="system:classifier")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.PAUSED
    close(sent.lead, Status.DEAD)

    assert leads_resume_paused(now=timezone.now() + timedelta(days=30)) == 0

    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.paused_until, lead.next_send_at) == (Status.DEAD, None, None)
