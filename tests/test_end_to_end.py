"""The whole loop against real servers: demo leads are mailed over SMTP, one answers in a real IMAP
inbox, CAM reads it, stops that lead's sequence and tells a person by email."""

from email.message import EmailMessage
from io import StringIO

import pytest
from django.core.management import call_command

from cam.models import HumanAlertLog, InboundEmail, Lead, OutboundEmail


@pytest.mark.django_db
def test_a_positive_reply_in_the_inbox_reaches_a_person(smtp_server, smtp_settings, imap_server, settings,
                                                         monkeypatch):
    settings.AICMO_CAM_ALERT_EMAILS = ["sales-team@cam.example.com"]
    user = imap_server.new_user("demo")
    monkeypatch.setenv("CAM_SECRET_DEMO_IMAP_PASSWORD", imap_server.password)

    call_command("cam_demo", "--smtp", f"{smtp_server.host}:{smtp_server.port}",
                 "--imap", f"{imap_server.host}:{imap_server.port}", "--imap-user", user,
                 "--imap-password-env", "CAM_SECRET_DEMO_IMAP_PASSWORD", stdout=StringIO())
    call_command("cam_worker", "--once", stdout=StringIO())  # one cycle: the first emails go out
    first_emails = list(smtp_server.messages)
    assert len(first_emails) == OutboundEmail.objects.filter(status="SENT").count() >= 20

    ours = first_emails[0].parsed
    answer = EmailMessage()
    answer["From"] = ours["To"]
    answer["To"] = ours["From"]
    answer["Subject"] = f"Re: {ours['Subject']}"
    answer["Message-ID"] = "<answer.1@brightlane.example.com>"
    answer["In-Reply-To"] = ours["Message-ID"].strip()
    answer["References"] = ours["Message-ID"].strip()
    answer.set_content("Yes, this sounds useful. Can we book a call on Thursday?\n\n> " +
                       ours.get_body(preferencelist=("plain",)).get_content().replace("\n", "\n> "))
    imap_server.append(user, answer.as_bytes())

    call_command("cam_worker", "--once", stdout=StringIO())  # the next: poll, classify, follow up, alert

    reply = InboundEmail.objects.get()
    lead = Lead.objects.get(email=ours["To"].addresses[0].addr_spec)
    assert (reply.category, reply.lead, reply.alert_sent) == ("POSITIVE", lead, True)
    assert lead.status == Lead.Status.INTERESTED and lead.next_send_at is None
    alert = HumanAlertLog.objects.get()
    assert alert.sent_successfully
    (alert_email,) = [m for m in smtp_server.messages if "sales-team@cam.example.com" in m.rcpt_tos]
    assert "Can we book a call on Thursday?" in alert_email.parsed.get_body(preferencelist=("plain",)).get_content()
    assert lead.email in alert_email.parsed.get_body(preferencelist=("plain",)).get_content()
