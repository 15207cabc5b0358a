"""DMARC authentication-failure reports (RFC 6591) are read apart from complaints, change no lead, and are
counted per sending domain on the domain's health panel (its page and its mailboxes' pages)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from cam.domains.services import auth_failure_reports
from cam.inbox.parsing import parse_message
from cam.inbox.processing import replies_process
from cam.models import InboundEmail, Lead, SendingDomain, Suppression
from tests.factories import InboundEmailFactory, LeadFactory, MailboxFactory, OutboundEmailFactory

pytestmark = pytest.mark.django_db
CORPUS = Path(__file__).parents[1] / "inbox" / "corpus"


def report(mailbox, *, domain: str, message_id: str) -> InboundEmail:
    """The corpus's OpenDMARC report, about ``domain`` and the email ``message_id``, stored as polling stores it."""
    raw = (CORPUS / "authfailure_dmarc_opendmarc.eml").read_bytes()
    raw = raw.replace(b"Message-ID: <000000000eee@example.net>", f"Message-ID: {message_id}".encode())
    raw = raw.replace(b"example.net", domain.encode())
    parsed = parse_message(raw)
    return InboundEmailFactory(mailbox=mailbox, raw_message=raw, message_id=parsed.message_id,
                               from_email=parsed.from_email, subject=parsed.subject)


def test_an_auth_failure_report_is_counted_for_its_domain_and_changes_no_lead(admin_client):
    mailbox = MailboxFactory(from_email="lena@brightloop.example")
    lead = LeadFactory(email="kijitora@example.org", status=Lead.Status.IN_SEQUENCE)
    OutboundEmailFactory(lead=lead, mailbox=mailbox, status="SENT", sent_at=timezone.now(),
                         message_id="<000000000eee@brightloop.example>")
    domain = SendingDomain.objects.create(domain="brightloop.example")
    fresh = report(mailbox, domain="brightloop.example", message_id="<000000000eee@brightloop.example>")
    old = report(mailbox, domain="brightloop.example", message_id="<older@brightloop.example>")
    other = report(mailbox, domain="elsewhere.example", message_id="<x@elsewhere.example>")

    replies_process()
    InboundEmail.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    fresh.refresh_from_db()
    assert (fresh.category, fresh.reported_domain, fresh.failed_recipients) == (
        InboundEmail.Category.AUTH_FAILURE, "brightloop.example", [])
    assert InboundEmail.objects.get(pk=other.pk).reported_domain == "elsewhere.example"
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.IN_SEQUENCE
    assert not Suppression.objects.exists()

    assert auth_failure_reports(["brightloop.example", "quiet.example"]) == {"brightloop.example": 1}
    html = admin_client.get(f"/admin/cam/sendingdomain/{domain.pk}/change/").content.decode()
    assert "1 authentication-failure report</strong> in the last 30 days" in html
    assert "category__exact=AUTH_FAILURE" in html
    mailbox_page = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/change/").content.decode()
    assert 'data-reports="1"' in mailbox_page


def test_a_domain_without_reports_says_so(admin_client):
    domain = SendingDomain.objects.create(domain="quiet.example")
    html = admin_client.get(f"/admin/cam/sendingdomain/{domain.pk}/change/").content.decode()
    assert "No authentication-failure reports in the last 30 days." in html
