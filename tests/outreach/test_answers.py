"""A person's answer to a reply, sent from CAM in the same thread through the real SMTP server: exactly once,
with the threading headers, the footer and List-Unsubscribe, and beside the sequence, never part of it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from cam import reporting
from cam.followup import reply_follow_up
from cam.models import AnswerSnippet, InboundEmail, Lead, OutboundEmail, Suppression
from cam.outreach.answers import AnswerRefused, answer_key, answer_send, snippets_for
from cam.outreach.planning import cap_use
from cam.outreach.sending import outbound_recover_stuck
from tests.factories import InboundEmailFactory, SuppressionFactory, UserFactory, put_in_flight
from tests.outreach.test_sending import due_lead, open_campaign, send_now, smtp_mailbox

pytestmark = pytest.mark.django_db

Status = OutboundEmail.Status


def a_warm_reply(smtp_server) -> InboundEmail:
    """A lead sent its first step through the real server, then answered positively."""
    mailbox = smtp_mailbox(smtp_server)
    owner = open_campaign(mailbox)
    lead = due_lead(owner, first_name="Anna", company="Brightlane", email="anna@brightlane.test")
    assert send_now()["sent"] == 1
    first = OutboundEmail.objects.get(lead=lead)
    reply = InboundEmailFactory(mailbox=mailbox, outbound_email=first, lead=lead, from_email="anna@brightlane.test",
                                subject="Re: Brightlane and fewer hand-offs", message_id="<reply.1@brightlane.test>",
                                references=first.message_id, category=InboundEmail.Category.POSITIVE,
                                classified_at=timezone.now(), received_at=timezone.now())
    reply_follow_up(inbound=reply, actor="system:reply")
    return reply


def test_an_answer_goes_out_once_in_the_thread_from_the_leads_mailbox(smtp_server):
    reply = a_warm_reply(smtp_server)
    lead_before = Lead.objects.get(pk=reply.lead_id)
    staff = UserFactory(is_staff=True, username="maria")
    key = answer_key()

    answered = answer_send(inbound=reply, author=staff, body="Great, Tuesday 10:00 works. Here is my calendar.",
                           key=key)

    email = answered.email
    assert answered.sent_now and email.status == Status.SENT and email.kind == OutboundEmail.Kind.MANUAL
    assert (email.author, email.answers, email.step, email.attempts) == (staff, reply, None, 1)
    [first, received] = smtp_server.messages
    assert received.rcpt_tos == ["anna@brightlane.test"]
    message = received.parsed
    assert message["From"] == "Alex Sender <alex@outreach.example.com>"
    assert message["Subject"] == "Re: Brightlane and fewer hand-offs"
    assert message["In-Reply-To"] == "<reply.1@brightlane.test>"
    assert message["References"] == f"{first.parsed['Message-ID']} <reply.1@brightlane.test>"
    assert message["Message-ID"] == email.message_id
    assert message["List-Unsubscribe"]  # kept, as on every email CAM sends
    body = message.get_content()
    assert body.startswith("Great, Tuesday 10:00 works.") and "Unsubscribe: http" in body  # the footer

    # A second submit of the same form (a double click, a retry) sends nothing more.
    again = answer_send(inbound=reply, author=staff, body="Great, Tuesday 10:00 works. Here is my calendar.",
                        key=key)
    assert (again.sent_now, again.email.pk) == (False, email.pk)
    assert len(smtp_server.messages) == 2

    # Beside the sequence: the lead is where the reply left it, and nothing counts the answer as a send.
    lead = Lead.objects.get(pk=reply.lead_id)
    assert (lead.status, lead.current_step, lead.next_send_at, lead.blocked_reason) == (
        lead_before.status, lead_before.current_step, lead_before.next_send_at, lead_before.blocked_reason)
    assert lead.status == Lead.Status.INTERESTED
    assert reporting.kpis("today")["sent"] == 1
    assert cap_use("mailbox_id", [email.mailbox_id], now=timezone.now())[email.mailbox_id].used == 1


def test_a_refusal_is_recorded_and_nothing_is_retried_on_its_own(smtp_server):
    reply = a_warm_reply(smtp_server)
    smtp_server.answer_rcpt("anna@brightlane.test", "550 5.1.1 No such user")

    answered = answer_send(inbound=reply, author=UserFactory(is_staff=True), body="Thanks!", key=answer_key())

    assert answered.email.status == Status.FAILED
    assert "550" in answered.email.last_error and answered.email.last_error.startswith("Not sent")
    assert send_now().get("sent", 0) == 0  # the sequence's sender never picks an answer up


def test_an_answer_left_in_flight_by_a_crash_becomes_unknown_never_retried(smtp_server):
    reply = a_warm_reply(smtp_server)
    email = OutboundEmail.objects.create(kind=OutboundEmail.Kind.MANUAL, lead=reply.lead, campaign=reply.lead.campaign,
                                         mailbox=reply.mailbox, to_email="anna@brightlane.test",
                                         message_id="<answer.crashed@outreach.example.com>",
                                         idempotency_key="k" * 32)
    put_in_flight(email, holder="dead-web-process")
    outbound_recover_stuck()
    email.refresh_from_db()
    assert email.status == Status.UNKNOWN
    assert Lead.objects.get(pk=reply.lead_id).blocked_reason == ""  # the sequence is not held for it


@pytest.mark.parametrize(("change", "message"), [
    ("empty", "Write the answer first"),
    ("suppressed", "Not sent: anna@brightlane.test is on the suppression list"),
    ("inactive", "is not active"),
    ("no key", "no valid key"),
])
def test_an_answer_that_cannot_go_says_why_and_sends_nothing(smtp_server, change, message):
    reply = a_warm_reply(smtp_server)
    body, key = "Thanks!", answer_key()
    if change == "empty":
        body = "   "
    elif change == "suppressed":
        SuppressionFactory(email="anna@brightlane.test", reason=Suppression.Reason.UNSUBSCRIBED)
    elif change == "inactive":
        type(reply.mailbox).objects.filter(pk=reply.mailbox_id).update(is_active=False)
        reply.refresh_from_db()
    else:
        key = ""
    with pytest.raises(AnswerRefused, match=message):
        answer_send(inbound=reply, author=UserFactory(is_staff=True), body=body, key=key)
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.MANUAL).count() == 0
    assert len(smtp_server.messages) == 1


# -- saved answers --------------------------------------------------------------------------------------

def test_saved_answers_are_offered_rendered_for_the_lead_and_a_broken_one_is_left_out(smtp_server):
    reply = a_warm_reply(smtp_server)
    AnswerSnippet.objects.create(name="Meeting link", body="Hi {{ first_name }}, pick a time for {{ company }}: "
                                                           "https://cal.example.com/alex")
    AnswerSnippet.objects.create(name="Broken", body="{% if %}")

    offered = [(snippet.name, text) for snippet, text in snippets_for(reply)]

    assert offered == [("Meeting link", "Hi Anna, pick a time for Brightlane: https://cal.example.com/alex")]


def test_the_admin_refuses_a_saved_answer_that_does_not_render(admin_client):
    response = admin_client.post("/admin/cam/answersnippet/add/", {"name": "Broken", "body": "Hi {% if %}"})
    assert response.status_code == 200
    assert "The saved answer template does not compile" in response.content.decode()
    assert not AnswerSnippet.objects.exists()
    response = admin_client.post("/admin/cam/answersnippet/add/", {"name": "Calendar",
                                                                   "body": "Hi {{ first_name }}, here you go."})
    assert response.status_code == 302 and AnswerSnippet.objects.get().name == "Calendar"
