"""The reply desk against the real servers, as a person meets it: a demo lead answers in a real IMAP inbox,
CAM reads it and puts it first on the desk, the alert links to its conversation, a staff member answers from
the composer over real SMTP — once, however often the form is sent — marks the meeting booked, and the lead's
timeline tells the whole story."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import getaddresses
from io import StringIO

import pytest
from django.core.management import call_command

from cam import timeline
from cam.models import AnswerSnippet, HumanAlertLog, InboundEmail, Lead, LeadEvent, OutboundEmail

PUBLIC_URL = "https://cam.example.com"


def answer_to(ours, words: str) -> EmailMessage:
    """What the lead writes back to our first email, quoting it, as a mail client would."""
    answer = EmailMessage()
    answer["From"] = ours["To"]
    answer["To"] = ours["From"]
    answer["Subject"] = f"Re: {ours['Subject']}"
    answer["Message-ID"] = "<answer.1@brightlane.example.com>"
    answer["In-Reply-To"] = ours["Message-ID"].strip()
    answer["References"] = ours["Message-ID"].strip()
    answer.set_content(f"{words}\n\n> " + ours.get_body(preferencelist=("plain",)).get_content().replace("\n", "\n> "))
    return answer


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


@pytest.mark.django_db
def test_a_warm_reply_is_read_answered_once_from_the_desk_and_told_on_the_lead(
        smtp_server, smtp_settings, imap_server, settings, monkeypatch, admin_client):
    settings.AICMO_CAM_ALERT_EMAILS = ["sales-team@cam.example.com"]
    settings.AICMO_CAM_PUBLIC_URL = PUBLIC_URL
    user = imap_server.new_user("desk")
    monkeypatch.setenv("CAM_SECRET_DESK_IMAP_PASSWORD", imap_server.password)
    call_command("cam_demo", "--smtp", f"{smtp_server.host}:{smtp_server.port}",
                 "--imap", f"{imap_server.host}:{imap_server.port}", "--imap-user", user,
                 "--imap-password-env", "CAM_SECRET_DESK_IMAP_PASSWORD", stdout=StringIO())
    call_command("cam_worker", "--once", stdout=StringIO())  # the first emails go out
    ours = smtp_server.messages[0].parsed
    lead = Lead.objects.get(email=ours["To"].addresses[0].addr_spec)

    # The lead answers in the real inbox; the next cycle reads it, stops the sequence and alerts a person.
    words = "Yes, this sounds useful. Can we book a call on Thursday?"
    imap_server.append(user, answer_to(ours, words).as_bytes())
    call_command("cam_worker", "--once", stdout=StringIO())
    reply = InboundEmail.objects.get()
    assert (reply.category, reply.lead_id) == (InboundEmail.Category.POSITIVE, lead.pk)

    # First on the desk.
    inbox = admin_client.get("/admin/cam/reply/")
    assert inbox.context["cl"].result_list[0].pk == reply.pk

    # The alert links to the conversation, and the link opens it.
    assert HumanAlertLog.objects.get(inbound_email=reply).sent_successfully
    (alert,) = [m for m in smtp_server.messages if "sales-team@cam.example.com" in m.rcpt_tos]
    link = f"{PUBLIC_URL}/admin/cam/reply/{reply.pk}/thread/"
    assert link in plain(alert.parsed)
    AnswerSnippet.objects.create(name="Meeting link",
                                 body="Pick a time that suits you, {{ first_name }}: https://cal.example.com/demo")
    thread = admin_client.get(link.removeprefix(PUBLIC_URL))
    page = thread.content.decode()
    assert thread.status_code == 200 and words in page

    # The answer, from the composer, over real SMTP.
    sent_before = len(smtp_server.messages)
    key = re.search(r'name="key" value="([0-9a-f]+)"', page).group(1)
    # The saved answer, rendered for this lead, is what the composer inserts where the person types.
    snippet = re.search(r'data-text="([^"]*)"', page).group(1)
    assert snippet == f"Pick a time that suits you, {lead.first_name}: https://cal.example.com/demo"
    form = {"body": f"Thursday 10:00 works. {snippet}", "key": key}
    sent = admin_client.post(f"/admin/cam/reply/{reply.pk}/answer/", form, follow=True)
    assert "Answer sent to" in sent.content.decode()

    (delivered,) = smtp_server.messages[sent_before:]
    message = delivered.parsed
    assert delivered.rcpt_tos == [lead.email]
    assert getaddresses([message["From"]]) == getaddresses([ours["From"]])  # the mailbox that wrote to the lead
    assert message["Subject"] == f"Re: {ours['Subject']}"
    assert message["In-Reply-To"] == "<answer.1@brightlane.example.com>"
    assert message["References"].split() == [ours["Message-ID"].strip(), "<answer.1@brightlane.example.com>"]
    assert message["List-Unsubscribe"] and f"Thursday 10:00 works. {snippet}" in plain(message)
    answer = OutboundEmail.objects.get(kind=OutboundEmail.Kind.MANUAL)
    assert (answer.status, answer.author.username, answer.lead_id) == (
        OutboundEmail.Status.SENT, sent.wsgi_request.user.username, lead.pk)
    assert answer.message_id == message["Message-ID"].strip()

    # The meeting, marked on the thread.
    admin_client.post(f"/admin/cam/reply/{reply.pk}/outcome/", {"status": "MEETING_BOOKED",
                                                                "reason": "Thursday 10:00"})
    lead.refresh_from_db()
    assert lead.status == Lead.Status.MEETING_BOOKED

    # The lead's timeline: the send, the reply, the answer and the status change, each once.
    story = timeline.lead_timeline(lead, oldest_first=True)
    kinds = [(entry.kind, entry.title) for entry in story]
    assert (timeline.SENT, f"Step 1 sent: {ours['Subject']}") in kinds
    assert (timeline.SENT, f"Answer sent: Re: {ours['Subject']}") in kinds
    assert [entry.kind for entry in story if entry.record == reply] == [timeline.REPLY]
    status_titles = [title for kind, title in kinds if kind == timeline.STATUS]
    assert status_titles[-1].endswith("→ Meeting booked")
    sent_order = [entry.record for entry in story if entry.kind in (timeline.SENT, timeline.REPLY)]
    assert sent_order.index(reply) < sent_order.index(answer)
    lead_page = admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").content.decode()
    assert f"Answer sent: Re: {ours['Subject']}" in lead_page and "Meeting booked" in lead_page

    # The same form again (a double click, a retry): nothing more goes out.
    again = admin_client.post(f"/admin/cam/reply/{reply.pk}/answer/", form, follow=True)
    assert "already sent" in again.content.decode()
    assert len(smtp_server.messages) == sent_before + 1
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.MANUAL).count() == 1
    assert LeadEvent.objects.filter(lead=lead, to_status=Lead.Status.MEETING_BOOKED).count() == 1
