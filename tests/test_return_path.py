"""Signed return paths (VERP): what the SMTP server is told to send bounces to, and reading it back."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.http import int_to_base36

from cam.models import Lead, Mailbox, OutboundEmail
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outreach_send
from cam.return_path import (
    LOCAL_PART_MAX,
    outbound_id_from_return_path,
    return_path_problem,
    signed_return_path,
)
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db


def verp_outbound(**mailbox_fields) -> OutboundEmail:
    mailbox = MailboxFactory(from_email="alex@outreach.example.com", verp_return_path=True, **mailbox_fields)
    return OutboundEmailFactory(mailbox=mailbox)


def test_it_signs_the_email_into_the_mailboxs_plus_address_and_reads_it_back():
    outbound = verp_outbound()
    address = signed_return_path(outbound)
    local, _, domain = address.rpartition("@")
    assert domain == "outreach.example.com"
    assert local.startswith("alex+b-") and len(local) <= LOCAL_PART_MAX
    assert address == address.lower()  # nothing a server lower-casing it could break
    assert outbound_id_from_return_path(address) == outbound.pk
    # As a server that lower- or upper-cases it, or a header that wraps it, hands it back.
    assert outbound_id_from_return_path(f"<{address.upper()}>") == outbound.pk


def test_it_refuses_a_return_path_altered_or_made_up():
    outbound = verp_outbound()
    other = OutboundEmailFactory(mailbox=outbound.mailbox)
    address = signed_return_path(outbound)
    local, _, domain = address.rpartition("@")
    signature = local.rpartition("-")[2]
    tampered = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"
    # Another email's id under this email's signature.
    moved = f"alex+b-{int_to_base36(other.pk)}-{signature}@{domain}"
    assert [outbound_id_from_return_path(value) for value in (
        tampered, moved, "alex@outreach.example.com", "alex+b-1-0000000000000000@outreach.example.com",
        "alex+b-zzzzzzzzzzzzzzz-0000000000000000@outreach.example.com", "")] == [None] * 6


def test_a_rotated_secret_key_still_reads_the_return_paths_signed_before_while_it_is_a_fallback(settings):
    outbound = verp_outbound()
    address = signed_return_path(outbound)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 50, [old]
    assert outbound_id_from_return_path(address) == outbound.pk
    settings.SECRET_KEY_FALLBACKS = []
    assert outbound_id_from_return_path(address) is None


def test_a_mailbox_without_it_or_without_room_for_it_sends_with_its_plain_address():
    assert signed_return_path(OutboundEmailFactory(mailbox=MailboxFactory(verp_return_path=False))) == ""
    long_local = "a" * 40
    mailbox = MailboxFactory(from_email=f"{long_local}@outreach.example.com", verp_return_path=True)
    assert signed_return_path(OutboundEmailFactory(mailbox=mailbox)) == ""
    assert return_path_problem(f"{long_local}@outreach.example.com")
    assert return_path_problem("alex+sales@outreach.example.com")
    assert return_path_problem("alex@outreach.example.com") == ""


def test_the_mailbox_refuses_it_where_the_address_leaves_no_room():
    mailbox = MailboxFactory.build(name="Long", from_email=f"{'a' * 40}@outreach.example.com",
                                   verp_return_path=True)
    with pytest.raises(ValidationError) as refused:
        mailbox.full_clean()
    assert "too long for a signed return path" in str(refused.value.message_dict["verp_return_path"])
    mailbox.verp_return_path = False
    mailbox.full_clean()


# --- through the real SMTP server -------------------------------------------------------------------


def smtp_campaign(server, **mailbox_fields) -> tuple[Mailbox, Lead]:
    mailbox = MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host=server.host, smtp_port=server.port,
                             smtp_security="none", daily_cap=1000, min_gap_seconds=0, from_name="Alex Sender",
                             from_email="alex@outreach.example.com", **mailbox_fields)
    campaign = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24,
                               daily_cap=10_000)
    campaign.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=campaign, position=1, subject_template="Fewer hand-offs",
                        body_template="Hi, a quick question.")
    lead = LeadFactory(campaign=campaign, email="anna@brightlane.example.com", status=Lead.Status.IN_SEQUENCE,
                       next_send_at=timezone.now() - timedelta(minutes=1))
    return mailbox, lead


def test_the_smtp_envelope_sender_is_the_signed_return_path_and_the_from_stays_the_mailboxs(smtp_server):
    smtp_campaign(smtp_server, verp_return_path=True)
    outreach_plan()
    assert outreach_send(inline=True)["sent"] == 1

    (received,) = smtp_server.messages
    sent = OutboundEmail.objects.get()
    assert received.mail_from == signed_return_path(sent)
    assert received.mail_from.startswith("alex+b-") and received.mail_from.endswith("@outreach.example.com")
    assert outbound_id_from_return_path(received.mail_from) == sent.pk
    assert received.parsed["From"] == "Alex Sender <alex@outreach.example.com>"
    assert received.parsed["Message-ID"].strip() == sent.message_id
    assert "Return-Path" not in received.parsed  # the receiving server adds it, from the envelope


def test_without_it_the_envelope_sender_is_the_mailboxs_address(smtp_server):
    smtp_campaign(smtp_server)
    outreach_plan()
    assert outreach_send(inline=True)["sent"] == 1
    (received,) = smtp_server.messages
    assert received.mail_from == "alex@outreach.example.com"
