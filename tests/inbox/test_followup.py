"""Stored replies are classified, matched to what we sent, and acted on once — and silence too."""

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.followup import leads_no_reply_timeout, leads_resume_paused
from cam.inbox.processing import replies_process
from cam.models import HumanAlertLog, InboundEmail, Lead, LeadEvent, OutboundEmail, Suppression
from cam.outreach.unsubscribe import unsubscribe_mailto, unsubscribe_token
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


@pytest.fixture
def sent():
    """A lead that got step 1 of a two-step sequence; step 2 is already planned."""
    campaign = CampaignFactory(out_of_office_days=5, soft_bounce_limit=2)
    mailbox = MailboxFactory(from_email="alex@outreach.example.com")
    first = SequenceStepFactory(campaign=campaign, position=1)
    second = SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    lead = LeadFactory(campaign=campaign, email="anna@brightlane.example.com", first_name="Anna",
                       status=Status.IN_SEQUENCE, current_step=1, mailbox=mailbox,
                       last_contacted_at=timezone.now() - timedelta(days=1))
    email = OutboundEmailFactory(lead=lead, campaign=campaign, step=first, mailbox=mailbox, status="SENT",
                                 subject="Brightlane and fewer hand-offs", sent_at=timezone.now() - timedelta(days=1),
                                 message_id="<first.4711@outreach.example.com>")
    OutboundEmailFactory(lead=lead, campaign=campaign, step=second, mailbox=mailbox, status="PENDING",
                         message_id="<second.4712@outreach.example.com>")
    return email


def reply(sent: OutboundEmail, text: str, *, subject: str = "", sender: str = "", headers=None) -> InboundEmail:
    message = EmailMessage()
    message["From"] = sender or f"Anna Schmidt <{sent.to_email}>"
    message["To"] = sent.from_email or "alex@outreach.example.com"
    message["Subject"] = subject or f"Re: {sent.subject}"
    message["Message-ID"] = f"<reply.{InboundEmail.objects.count()}@brightlane.example.com>"
    message["In-Reply-To"] = sent.message_id
    message["References"] = sent.message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(f"{text}\n\nOn Mon, Alex wrote:\n> Would fewer hand-offs help Brightlane?\n")
    return InboundEmailFactory(mailbox=sent.mailbox, raw_message=message.as_bytes(), from_email=sent.to_email,
                               message_id=message["Message-ID"], in_reply_to=sent.message_id,
                               references=sent.message_id, subject=message["Subject"], new_text="")


def state(lead: Lead) -> tuple:
    lead.refresh_from_db()
    return lead.status, lead.next_send_at


def test_a_positive_reply_stops_the_sequence_and_queues_one_alert(sent):
    inbound = reply(sent, "Sounds interesting, let's talk next week!")
    assert replies_process()["positive"] == 1
    inbound.refresh_from_db()
    assert (inbound.category, inbound.lead, inbound.outbound_email) == ("POSITIVE", sent.lead, sent)
    assert "matched by thread" in inbound.classification_reasons
    assert inbound.new_text.startswith("Sounds interesting") and "Would fewer" not in inbound.new_text
    assert state(sent.lead) == (Status.INTERESTED, None)
    assert OutboundEmail.objects.get(step__position=2).status == "CANCELLED"
    alert = HumanAlertLog.objects.get()
    assert (alert.alert_type, alert.lead, alert.inbound_email) == ("POSITIVE_REPLY", sent.lead, inbound)
    assert "Sounds interesting" in alert.body and inbound.alert_sent
    event = LeadEvent.objects.get()
    assert (event.from_status, event.to_status, event.actor, event.inbound_email) == (
        "IN_SEQUENCE", "INTERESTED", "system:classifier", inbound)
    sent.lead.refresh_from_db()
    assert sent.lead.replied_at is not None

    # Later cycles see nothing new: processed once, alerted once.
    assert replies_process() == {"processed": 0, "errors": 0}
    assert HumanAlertLog.objects.count() == 1


def test_a_negative_reply_marks_the_lead_not_interested(sent):
    reply(sent, "No thanks, we are not interested.")
    replies_process()
    assert state(sent.lead) == (Status.NOT_INTERESTED, None)
    assert not HumanAlertLog.objects.exists()


def test_an_unsubscribe_request_by_email_suppresses_the_address(sent):
    reply(sent, "Please remove me from your list.")
    replies_process()
    assert state(sent.lead)[0] == Status.UNSUBSCRIBED
    assert Suppression.objects.get().email == sent.to_email


def mailto_unsubscribe(mailbox, *, sender: str, subject: str) -> InboundEmail:
    """What a mail client sends for the mailto address of List-Unsubscribe: a new message, no thread."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, mailbox.from_email, subject
    message["Message-ID"] = f"<unsubscribe.{InboundEmail.objects.count()}@mail.example.net>"
    message.set_content("This message was sent automatically to unsubscribe.")
    return InboundEmailFactory(mailbox=mailbox, raw_message=message.as_bytes(), from_email=sender,
                               message_id=message["Message-ID"], in_reply_to="", references="",
                               subject=subject, new_text="")


def test_a_mailto_unsubscribe_is_matched_by_its_token_before_the_sender(sent):
    # Sent from a colleague's address that is a lead of its own (a shared or forwarded mailbox): the
    # token, not the sender, says whom the request is about.
    colleague = LeadFactory(campaign=sent.campaign, email="office@brightlane.example.com",
                            status=Status.IN_SEQUENCE, mailbox=sent.mailbox)
    OutboundEmailFactory(lead=colleague, campaign=sent.campaign, step=sent.step, mailbox=sent.mailbox,
                         status="SENT", sent_at=timezone.now())
    mailto = unsubscribe_mailto(sent.lead, sent.mailbox)
    subject = unquote(mailto.split("?subject=", 1)[1])

    inbound = mailto_unsubscribe(sent.mailbox, sender=colleague.email, subject=f"Fwd: {subject}")
    replies_process()

    inbound.refresh_from_db()
    assert (inbound.category, inbound.lead, inbound.outbound_email) == ("UNSUBSCRIBE", sent.lead, sent)
    assert "matched by unsubscribe token" in inbound.classification_reasons
    assert state(sent.lead)[0] == Status.UNSUBSCRIBED
    assert state(colleague)[0] == Status.IN_SEQUENCE
    assert list(Suppression.objects.values_list("email", flat=True)) == [sent.to_email]


def test_a_forged_token_is_no_proof_and_the_sender_decides(sent):
    token = unsubscribe_token(sent.lead)
    forged = f"{token.split(':')[0]}:{'A' * 43}"
    inbound = mailto_unsubscribe(sent.mailbox, sender="stranger@elsewhere.example.org",
                                 subject=f"unsubscribe {forged}")
    replies_process()
    inbound.refresh_from_db()
    assert (inbound.category, inbound.lead) == ("UNSUBSCRIBE", None)
    assert state(sent.lead)[0] == Status.IN_SEQUENCE


def test_an_out_of_office_reply_pauses_the_lead_until_the_return_date_then_it_resumes(sent):
    back = date.today() + timedelta(days=10)
    reply(sent, f"I am out of the office with limited access to email. I will be back on {back.strftime('%d %B %Y')}.",
          subject="Out of Office: Brightlane and fewer hand-offs", headers={"Auto-Submitted": "auto-replied"})
    replies_process()
    lead = sent.lead
    lead.refresh_from_db()
    assert lead.status == Status.PAUSED
    assert lead.paused_until.date() == back
    assert OutboundEmail.objects.get(step__position=2).status == "PENDING"  # kept for after the pause

    assert leads_resume_paused(now=lead.paused_until - timedelta(minutes=1)) == 0
    assert leads_resume_paused(now=lead.paused_until + timedelta(minutes=1)) == 1
    lead.refresh_from_db()
    assert (lead.status, lead.paused_until) == (Status.IN_SEQUENCE, None)


def test_a_referral_stops_the_lead_and_alerts_with_the_referred_address(sent):
    reply(sent, "I'm not the right person for this - please contact our COO, jonas.weber@brightlane.example.com.")
    replies_process()
    inbound = InboundEmail.objects.get()
    assert (inbound.category, inbound.referral_email) == ("REFERRAL", "jonas.weber@brightlane.example.com")
    assert state(sent.lead)[0] == Status.REFERRED
    alert = HumanAlertLog.objects.get()
    assert alert.alert_type == "REFERRAL" and "jonas.weber@brightlane.example.com" in alert.title


DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.brightlane.example.com>
To: alex@outreach.example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce.{n}@mx.brightlane.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.brightlane.example.com.

I'm sorry to have to inform you that your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.brightlane.example.com

Final-Recipient: rfc822; {to}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--b1
Content-Type: text/rfc822-headers

Message-ID: {message_id}
From: alex@outreach.example.com
To: {to}
Subject: {subject}

--b1--
"""


def bounce(sent: OutboundEmail, *, status: str, diagnostic: str) -> InboundEmail:
    raw = DSN.format(n=InboundEmail.objects.count(), to=sent.to_email, status=status, diagnostic=diagnostic,
                     action="failed" if status.startswith("5") else "delayed", message_id=sent.message_id,
                     subject=sent.subject)
    return InboundEmailFactory(mailbox=sent.mailbox, raw_message=raw.replace("\n", "\r\n").encode(),
                               from_email="mailer-daemon@mx.brightlane.example.com", in_reply_to="", references="",
                               subject="Undelivered Mail Returned to Sender", new_text="")


def test_a_hard_bounce_marks_the_lead_bounced_and_suppresses_the_address(sent):
    bounce(sent, status="5.1.1", diagnostic="550 5.1.1 <anna@brightlane.example.com>: User unknown")
    replies_process()
    inbound = InboundEmail.objects.get()
    assert (inbound.category, inbound.lead, inbound.bounce_status_code) == ("BOUNCE_HARD", sent.lead, "5.1.1")
    assert state(sent.lead)[0] == Status.BOUNCED
    assert Suppression.objects.get(email=sent.to_email).reason == "HARD_BOUNCE"


def test_a_soft_bounce_retries_the_same_step_then_counts_as_bounced_at_the_limit(sent):
    bounce(sent, status="4.2.2", diagnostic="452 4.2.2 Mailbox full")
    replies_process()
    sent.refresh_from_db()
    assert (sent.status, sent.soft_bounces) == ("RETRY", 1)
    assert sent.next_attempt_at > timezone.now() + timedelta(hours=23)
    lead = sent.lead
    lead.refresh_from_db()
    assert (lead.status, lead.current_step) == (Status.IN_SEQUENCE, 0)

    OutboundEmail.objects.filter(pk=sent.pk).update(status="SENT", updated_at=timezone.now() - timedelta(hours=1))
    bounce(sent, status="4.2.2", diagnostic="452 4.2.2 Mailbox full")
    replies_process()
    assert state(lead)[0] == Status.BOUNCED
    sent.refresh_from_db()
    assert sent.soft_bounces == 2
    assert sent.updated_at > timezone.now() - timedelta(minutes=1)  # the change shows when it happened


def test_mail_that_matches_nothing_is_kept_and_shown(sent):
    message = EmailMessage()
    message["From"] = "someone@elsewhere.example.com"
    message["Subject"] = "Hello"
    message.set_content("Do you sell sandwiches?")
    inbound = InboundEmailFactory(mailbox=sent.mailbox, raw_message=message.as_bytes(),
                                  from_email="someone@elsewhere.example.com", in_reply_to="", references="")
    replies_process()
    inbound.refresh_from_db()
    assert inbound.processed_at is not None and inbound.lead is None
    assert state(sent.lead)[0] == Status.IN_SEQUENCE


def test_a_reply_can_stop_the_whole_company_when_the_campaign_says_so(sent):
    campaign = sent.campaign
    campaign.stop_company_on_reply = True
    campaign.save()
    colleague = LeadFactory(campaign=campaign, email="jonas@brightlane.example.com", status=Status.IN_SEQUENCE)
    elsewhere = LeadFactory(campaign=campaign, email="mia@other.example.com", status=Status.IN_SEQUENCE)
    reply(sent, "Not interested, thanks.")
    replies_process()
    assert (state(colleague)[0], state(elsewhere)[0]) == (Status.NURTURE, Status.IN_SEQUENCE)


def test_it_moves_silent_leads_to_the_campaigns_no_reply_outcome(sent):
    campaign = sent.campaign
    campaign.no_reply_days, campaign.no_reply_outcome = 7, "DEAD"
    campaign.save()
    now = datetime(2030, 1, 10, tzinfo=UTC)
    done = LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=2, next_send_at=None,
                       last_contacted_at=now - timedelta(days=8))
    recent = LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=2, next_send_at=None,
                         last_contacted_at=now - timedelta(days=6))
    midway = LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=1,
                         next_send_at=now, last_contacted_at=now - timedelta(days=30))
    assert leads_no_reply_timeout(now=now) == {"nurture": 0, "dead": 1}
    assert [state(lead)[0] for lead in (done, recent, midway)] == [Status.DEAD, Status.IN_SEQUENCE,
                                                                   Status.IN_SEQUENCE]
    assert LeadEvent.objects.get(lead=done).actor == "system:no-reply timeout"


def test_staff_reclassify_a_reply_and_the_follow_up_follows(sent, admin_client):
    inbound = reply(sent, "Not interested.")
    replies_process()
    assert state(sent.lead)[0] == Status.NOT_INTERESTED
    admin_client.post(reverse("admin:cam_inboundemail_changelist"),
                      {"action": "reclassify_positive", "_selected_action": [inbound.pk]})
    inbound.refresh_from_db()
    assert (inbound.category, inbound.classified_by) == ("POSITIVE", f"staff:{admin_client.user.username}")
    assert state(sent.lead)[0] == Status.INTERESTED
    assert HumanAlertLog.objects.filter(alert_type="POSITIVE_REPLY").count() == 1


def test_the_triage_list_puts_warm_replies_first(sent, admin_client):
    cold = reply(sent, "No thanks.")
    warm = reply(sent, "Yes please, send me the details.")
    replies_process()
    page = admin_client.get(reverse("admin:cam_inboundemail_changelist"))
    rows = list(page.context["cl"].result_list)
    assert rows[0] == warm and cold in rows


@pytest.mark.parametrize(
    ("category", "status", "alerts"),
    [
        ("QUESTION", Status.INTERESTED, 1),
        ("NEUTRAL", Status.NURTURE, 0),
        ("AUTO_REPLY", Status.IN_SEQUENCE, 0),
        ("COMPLAINT", Status.UNSUBSCRIBED, 0),
    ],
)
def test_every_other_category_has_its_follow_up(sent, category, status, alerts):
    from cam.inbox.processing import reply_reclassify

    inbound = reply(sent, "Thanks.")
    InboundEmail.objects.filter(pk=inbound.pk).update(lead=sent.lead, outbound_email=sent)
    inbound.refresh_from_db()
    reply_reclassify(inbound=inbound, category=category, by="staff:alex")
    assert state(sent.lead)[0] == status
    assert HumanAlertLog.objects.count() == alerts
    if category == "COMPLAINT":
        assert Suppression.objects.get(email=sent.to_email).reason == "COMPLAINT"
    if status != Status.IN_SEQUENCE:
        assert LeadEvent.objects.filter(lead=sent.lead, to_status=status, actor="staff:alex").exists()


# -- final statuses: nothing moves a lead out of UNSUBSCRIBED or BOUNCED ---------------------------

def admin_reclassify(admin_client, inbound: InboundEmail, category: str) -> None:
    response = admin_client.post(reverse("admin:cam_inboundemail_changelist"),
                                 {"action": f"reclassify_{category.lower()}", "_selected_action": [inbound.pk]})
    assert response.status_code == 302


@pytest.mark.parametrize("later", ["POSITIVE", "QUESTION", "NEGATIVE", "NEUTRAL", "REFERRAL", "OUT_OF_OFFICE"])
def test_staff_reclassifying_an_unsubscribe_leaves_the_lead_unsubscribed(sent, admin_client, later):
    inbound = reply(sent, "Please remove me from your list.")
    replies_process()
    assert state(sent.lead)[0] == Status.UNSUBSCRIBED

    admin_reclassify(admin_client, inbound, later)

    inbound.refresh_from_db()
    assert (inbound.category, inbound.classified_by) == (later, f"staff:{admin_client.user.username}")
    assert state(sent.lead) == (Status.UNSUBSCRIBED, None)
    last = LeadEvent.objects.filter(lead=sent.lead).order_by("-id").first()
    assert (last.from_status, last.to_status, last.actor, last.inbound_email) == (
        Status.UNSUBSCRIBED, Status.UNSUBSCRIBED, f"staff:{admin_client.user.username}", inbound)
    assert "the lead stays UNSUBSCRIBED" in last.reason
    assert Suppression.objects.filter(email=sent.to_email).exists()


def test_staff_reclassifying_a_hard_bounce_as_positive_leaves_the_lead_bounced(sent, admin_client):
    bounce(sent, status="5.1.1", diagnostic="550 5.1.1 <anna@brightlane.example.com>: User unknown")
    replies_process()
    inbound = InboundEmail.objects.get()

    admin_reclassify(admin_client, inbound, "POSITIVE")

    assert state(sent.lead)[0] == Status.BOUNCED
    assert "the lead stays BOUNCED" in LeadEvent.objects.filter(lead=sent.lead).order_by("-id").first().reason


@pytest.mark.parametrize(("final", "text"), [(Status.UNSUBSCRIBED, "Yes please, send me the details."),
                                             (Status.BOUNCED, "Not interested."),
                                             (Status.UNSUBSCRIBED, "I am out of the office until Monday.")])
def test_a_reply_classified_for_a_lead_already_final_leaves_it_there(sent, final, text):
    Lead.objects.filter(pk=sent.lead_id).update(status=final, next_send_at=None)
    reply(sent, text)

    replies_process()

    assert InboundEmail.objects.get().category
    assert state(sent.lead) == (final, None)
    event = LeadEvent.objects.get(lead=sent.lead)
    assert (event.from_status, event.to_status, event.actor) == (final, final, "system:classifier")


def test_by_hand_a_final_status_leads_only_to_an_unsubscribe_or_a_conversations_outcome_never_to_a_sequence():
    from cam.leads import FINAL_STATUSES, OPEN_STATUSES, lead_statuses_allowed

    outcomes = (Status.INTERESTED, Status.REFERRED, Status.MEETING_BOOKED, Status.NOT_INTERESTED, Status.NURTURE,
                Status.DEAD, Status.WON, Status.LOST)
    assert {status: lead_statuses_allowed(status) for status in FINAL_STATUSES} == {
        Status.UNSUBSCRIBED: outcomes, Status.BOUNCED: (Status.UNSUBSCRIBED, *outcomes)}
    assert not set(OPEN_STATUSES) & {target for status in FINAL_STATUSES for target in lead_statuses_allowed(status)}


@pytest.mark.parametrize("final", [Status.UNSUBSCRIBED, Status.BOUNCED])
def test_a_final_status_is_not_set_without_suppressing_the_address(sent, final):
    from cam.lead_changes import LeadChanges

    changes = LeadChanges(now=timezone.now())
    with pytest.raises(ValueError, match="suppress the address"):
        changes.set_status(lead=sent.lead, to_status=final, actor="staff:alex", reason="by hand")
    changes.apply()
    assert state(sent.lead)[0] == Status.IN_SEQUENCE
