"""Only proof changes a lead: a bounce or complaint acts only when it carries our Message-ID or comes
back to our signed return path; anything else is held until a person confirms or dismisses it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cam.decisions import metrics_compute
from cam.inbox.matching import embedded_message_ids
from cam.inbox.parsing import message_from_raw, parse_message
from cam.inbox.polling import inbox_poll
from cam.inbox.processing import NotHeld, bounce_confirm, bounce_dismiss, replies_process
from cam.models import InboundEmail, Lead, LeadEvent, Mailbox, OutboundEmail, Suppression
from cam.return_path import signed_return_path
from tests.factories import (
    CampaignFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
Status = Lead.Status
Category = InboundEmail.Category
NEEDED = InboundEmail.Confirmation.NEEDED

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))["messages"]
REPORTS = sorted(name for name, expected in EXPECTED.items()
                 if expected["category"] in (Category.BOUNCE_HARD, Category.BOUNCE_SOFT, Category.COMPLAINT))
# Feedback loops that hide the recipient (hashed, redacted, "undisclosed"): only our Message-ID names it.
NAMING_NOBODY = [name for name in REPORTS if not EXPECTED[name]["failed_recipients"]]


@pytest.fixture
def sent() -> OutboundEmail:
    """Anna got step 1 of a two-step sequence from alex@outreach.example.com; step 2 is planned."""
    campaign = CampaignFactory(soft_bounce_limit=3)
    mailbox = MailboxFactory(from_email="alex@outreach.example.com")
    first = SequenceStepFactory(campaign=campaign, position=1)
    second = SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    lead = LeadFactory(campaign=campaign, email="anna@brightlane.example.com", status=Status.IN_SEQUENCE,
                       current_step=1, mailbox=mailbox, next_send_at=timezone.now() + timedelta(days=2),
                       last_contacted_at=timezone.now() - timedelta(days=1))
    email = OutboundEmailFactory(lead=lead, campaign=campaign, step=first, mailbox=mailbox, status="SENT",
                                 subject="Brightlane and fewer hand-offs", sent_at=timezone.now() - timedelta(days=1),
                                 message_id="<first.4711@outreach.example.com>")
    OutboundEmailFactory(lead=lead, campaign=campaign, step=second, mailbox=mailbox, status="PENDING",
                         message_id="<second.4712@outreach.example.com>")
    return email


def dsn(*, failed: str, message_id: str = "", headers: dict[str, str] | None = None, status: str = "5.1.1",
        sender: str = "Mail Delivery System <MAILER-DAEMON@attacker.example>",
        to: str = "alex@outreach.example.com") -> bytes:
    """A delivery status report; with ``message_id``, it carries the original message's headers."""
    lines = [*(f"{name}: {value}" for name, value in (headers or {}).items()),
             f"From: {sender}", f"To: {to}", "Subject: Undelivered Mail Returned to Sender",
             "Message-ID: <dsn.1@mx.example>", "MIME-Version: 1.0",
             'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"', "",
             "--b1", "Content-Type: text/plain", "", "Your message could not be delivered.", "",
             "--b1", "Content-Type: message/delivery-status", "", "Reporting-MTA: dns; mx.example", "",
             f"Final-Recipient: rfc822; {failed}", f"Action: {'failed' if status.startswith('5') else 'delayed'}",
             f"Status: {status}",
             f"Diagnostic-Code: smtp; {'550 5.1.1 User unknown' if status[0] == '5' else '452 4.2.2 Mailbox full'}",
             ""]
    if message_id:
        lines += ["--b1", "Content-Type: text/rfc822-headers", "", f"Message-ID: {message_id}",
                  "From: alex@outreach.example.com", f"To: {failed}", "Subject: Brightlane and fewer hand-offs", ""]
    lines.append("--b1--")
    return ("\r\n".join(lines) + "\r\n").encode()


def arf(*, complainant: str, message_id: str = "<made.up@attacker.example>") -> bytes:
    """An abuse feedback report (RFC 5965) carrying the headers of the message complained about."""
    return ("\r\n".join([
        "From: Complaints <fbl@attacker.example>", "To: alex@outreach.example.com", "Subject: FW: abuse report",
        "Message-ID: <arf.1@attacker.example>", "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f1"', "",
        "--f1", "Content-Type: text/plain", "", "This is an email abuse report.", "",
        "--f1", "Content-Type: message/feedback-report", "", "Feedback-Type: abuse", "User-Agent: FBL/1.0",
        "Version: 1", f"Original-Rcpt-To: {complainant}", "",
        "--f1", "Content-Type: text/rfc822-headers", "", f"Message-ID: {message_id}",
        "From: alex@outreach.example.com", f"To: {complainant}", "Subject: Brightlane and fewer hand-offs", "",
        "--f1--"]) + "\r\n").encode()


def stored(mailbox: Mailbox, raw: bytes) -> InboundEmail:
    """``raw`` as polling stores it."""
    parsed = parse_message(raw)
    return InboundEmailFactory(mailbox=mailbox, raw_message=raw, message_id=parsed.message_id,
                               in_reply_to=parsed.in_reply_to, references=parsed.references,
                               from_email=parsed.from_email, subject=parsed.subject, new_text=parsed.text)


def processed(inbound: InboundEmail) -> InboundEmail:
    replies_process()
    inbound.refresh_from_db()
    return inbound


def untouched(sent: OutboundEmail) -> None:
    """The lead goes on with its sequence as if the report had never come."""
    lead = Lead.objects.get(pk=sent.lead_id)
    assert (lead.status, lead.current_step, lead.next_send_at) == (Status.IN_SEQUENCE, 1, sent.lead.next_send_at)
    assert not Suppression.objects.filter(email=lead.email).exists()
    assert not LeadEvent.objects.filter(lead=lead).exists()
    assert list(OutboundEmail.objects.filter(lead=lead).order_by("step__position").values_list(
        "status", "soft_bounces")) == [("SENT", 0), ("PENDING", 0)]


# --- forged reports are held ------------------------------------------------------------------------


@pytest.mark.parametrize("carries", ["nothing", "a Message-ID that is not ours", "thread headers not ours"])
def test_a_forged_mailer_daemon_bounce_changes_nothing_and_waits_for_a_person(sent, carries):
    raw = dsn(failed="anna@brightlane.example.com",
              message_id="<made.up@attacker.example>" if carries == "a Message-ID that is not ours" else "",
              headers={"In-Reply-To": "<made.up@attacker.example>"} if carries == "thread headers not ours" else None)
    inbound = stored(sent.mailbox, raw)
    assert replies_process() == {"processed": 1, "errors": 0, "bounce_hard": 1, "held": 1}
    inbound.refresh_from_db()

    assert (inbound.category, inbound.confirmation) == (Category.BOUNCE_HARD, NEEDED)
    assert inbound.needs_confirmation
    # Matched, so a person sees whom it names; not applied.
    assert (inbound.lead_id, inbound.outbound_email_id) == (sent.lead_id, sent.pk)
    assert "matched by failed recipient" in inbound.classification_reasons
    assert any(reason.startswith("held for a person to confirm or dismiss — unproven: it carries none of our "
                                 "Message-IDs") for reason in inbound.classification_reasons)
    untouched(sent)


def test_a_forged_complaint_changes_nothing_and_waits_for_a_person(sent):
    inbound = processed(stored(sent.mailbox, arf(complainant="anna@brightlane.example.com")))
    assert (inbound.category, inbound.confirmation, inbound.lead_id) == (Category.COMPLAINT, NEEDED, sent.lead_id)
    untouched(sent)


def test_a_forged_soft_bounce_is_not_retried(sent):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com", status="4.2.2")))
    assert (inbound.category, inbound.confirmation) == (Category.BOUNCE_SOFT, NEEDED)
    untouched(sent)


def test_our_message_id_for_another_address_than_the_report_names_is_held(sent):
    raw = dsn(failed="someone.else@brightlane.example.com", message_id=sent.message_id)
    inbound = processed(stored(sent.mailbox, raw))
    assert inbound.confirmation == NEEDED
    assert any("went to anna@brightlane.example.com, but it reports someone.else@brightlane.example.com" in reason
               for reason in inbound.classification_reasons)
    untouched(sent)


# --- a person confirms or dismisses -----------------------------------------------------------------


def test_confirming_a_held_bounce_in_the_admin_applies_it_with_the_staff_member_as_actor(sent, admin_client):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    InboundEmailFactory(mailbox=sent.mailbox, lead=sent.lead, category=Category.NEUTRAL, processed_at=timezone.now())
    changelist = admin_client.get(reverse("admin:cam_inboundemail_changelist"))
    assert "Confirm bounce" in changelist.content.decode() and "Dismiss" in changelist.content.decode()
    first, _newer = changelist.context["cl"].result_list
    assert first == inbound  # held reports come early in the triage

    response = admin_client.post(reverse("admin:cam_inboundemail_confirm", args=[inbound.pk]))

    assert response.status_code == 302
    actor = f"staff:{admin_client.user.username}"
    lead = Lead.objects.get(pk=sent.lead_id)
    assert lead.status == Status.BOUNCED
    suppression = Suppression.objects.get(email="anna@brightlane.example.com")
    assert suppression.reason == "HARD_BOUNCE" and f"confirmed by {actor}" in suppression.source
    event = LeadEvent.objects.get(lead=lead, to_status=Status.BOUNCED)
    assert (event.from_status, event.actor, event.inbound_email_id) == (Status.IN_SEQUENCE, actor, inbound.pk)
    assert OutboundEmail.objects.get(message_id="<second.4712@outreach.example.com>").status == "CANCELLED"
    inbound.refresh_from_db()
    assert (inbound.confirmation, inbound.confirmation_by) == ("CONFIRMED", actor)
    assert inbound.confirmation_at is not None and inbound.classification_reasons[0] == f"confirmed by {actor}"

    # A second click (another tab, a colleague) applies nothing again.
    admin_client.post(reverse("admin:cam_inboundemail_confirm", args=[inbound.pk]))
    assert LeadEvent.objects.filter(lead=lead).count() == 1


def test_confirming_a_held_complaint_unsubscribes_with_the_actor(sent):
    inbound = processed(stored(sent.mailbox, arf(complainant="anna@brightlane.example.com")))
    bounce_confirm(inbound=inbound, by="staff:maria")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.UNSUBSCRIBED
    assert Suppression.objects.get(email="anna@brightlane.example.com").reason == "COMPLAINT"
    assert LeadEvent.objects.get(lead_id=sent.lead_id).actor == "staff:maria"


def test_dismissing_a_held_bounce_leaves_the_lead_and_it_cannot_be_confirmed_after(sent, admin_client):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    admin_client.post(reverse("admin:cam_inboundemail_dismiss", args=[inbound.pk]))
    inbound.refresh_from_db()
    assert (inbound.confirmation, inbound.confirmation_by) == ("DISMISSED", f"staff:{admin_client.user.username}")
    untouched(sent)
    with pytest.raises(NotHeld, match="already dismissed"):
        bounce_confirm(inbound=inbound, by="staff:maria")
    untouched(sent)


def test_only_a_held_report_can_be_confirmed_or_dismissed(sent):
    proven = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com", message_id=sent.message_id)))
    for decide in (bounce_confirm, bounce_dismiss):
        with pytest.raises(NotHeld, match="not waiting to be confirmed"):
            decide(inbound=proven, by="staff:maria")


def test_the_admin_actions_confirm_and_dismiss_the_selected_held_reports(sent, admin_client):
    other = OutboundEmailFactory(lead=LeadFactory(campaign=sent.campaign, email="ben@brightlane.example.com",
                                                  status=Status.IN_SEQUENCE),
                                 mailbox=sent.mailbox, status="SENT", sent_at=timezone.now())
    first = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    second = processed(stored(sent.mailbox, dsn(failed="ben@brightlane.example.com")))
    changelist = reverse("admin:cam_inboundemail_changelist")
    admin_client.post(changelist, {"action": "confirm_held", "_selected_action": [first.pk]})
    admin_client.post(changelist, {"action": "dismiss_held", "_selected_action": [second.pk]})
    assert Lead.objects.get(pk=sent.lead_id).status == Status.BOUNCED
    assert Lead.objects.get(pk=other.lead_id).status == Status.IN_SEQUENCE
    assert list(InboundEmail.objects.order_by("pk").values_list("confirmation", flat=True)) == [
        "CONFIRMED", "DISMISSED"]


def test_a_viewer_sees_no_buttons_and_cannot_confirm(sent, client):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_inboundemail"))
    client.force_login(viewer)
    page = client.get(reverse("admin:cam_inboundemail_changelist")).content.decode()
    assert "Needs confirming" in page and "Confirm bounce" not in page
    assert client.post(reverse("admin:cam_inboundemail_confirm", args=[inbound.pk])).status_code == 403
    untouched(sent)


def test_the_change_page_of_a_held_report_has_the_buttons(sent, admin_client):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    page = admin_client.get(reverse("admin:cam_inboundemail_change", args=[inbound.pk])).content.decode()
    assert reverse("admin:cam_inboundemail_confirm", args=[inbound.pk]) in page
    assert "csrfmiddlewaretoken" in page  # the buttons submit the page's form, token included


def test_reclassifying_a_held_report_is_a_persons_decision(sent, admin_client):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))
    admin_client.post(reverse("admin:cam_inboundemail_changelist"),
                      {"action": "reclassify_bounce_hard", "_selected_action": [inbound.pk]})
    inbound.refresh_from_db()
    assert (inbound.confirmation, inbound.confirmation_by) == ("CONFIRMED", f"staff:{admin_client.user.username}")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.BOUNCED


def test_a_held_or_dismissed_bounce_does_not_count_in_the_metrics_until_confirmed(sent):
    inbound = processed(stored(sent.mailbox, dsn(failed="anna@brightlane.example.com")))

    def hard_bounces() -> int:
        return metrics_compute()["campaigns"][sent.campaign_id]["all_time"]["bounced_hard"]

    assert hard_bounces() == 0
    bounce_confirm(inbound=inbound, by="staff:maria")
    assert hard_bounces() == 1


# --- proof: our Message-ID ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["original message", "thread"])
def test_a_genuine_bounce_with_our_message_id_still_bounces_the_lead(sent, where):
    raw = (dsn(failed="anna@brightlane.example.com", message_id=sent.message_id) if where == "original message"
           else dsn(failed="anna@brightlane.example.com", headers={"In-Reply-To": sent.message_id}))
    inbound = processed(stored(sent.mailbox, raw))
    assert (inbound.category, inbound.confirmation) == (Category.BOUNCE_HARD, "")
    assert f"matched by {where}" in inbound.classification_reasons
    assert Lead.objects.get(pk=sent.lead_id).status == Status.BOUNCED
    assert Suppression.objects.get().reason == "HARD_BOUNCE"
    assert LeadEvent.objects.get(lead_id=sent.lead_id).actor == "system:classifier"


def test_a_genuine_complaint_with_our_message_id_unsubscribes_the_lead(sent):
    inbound = processed(stored(sent.mailbox, arf(complainant="anna@brightlane.example.com",
                                                 message_id=sent.message_id)))
    assert (inbound.category, inbound.confirmation) == (Category.COMPLAINT, "")
    assert Lead.objects.get(pk=sent.lead_id).status == Status.UNSUBSCRIBED


# --- proof: our signed return path --------------------------------------------------------------------


@pytest.fixture
def verp(sent) -> tuple[OutboundEmail, OutboundEmail]:
    """The mailbox uses signed return paths; Ben got an email from it too."""
    Mailbox.objects.filter(pk=sent.mailbox_id).update(verp_return_path=True)
    ben = LeadFactory(campaign=sent.campaign, email="ben@brightlane.example.com", status=Status.IN_SEQUENCE)
    other = OutboundEmailFactory(lead=ben, mailbox=sent.mailbox, status="SENT", sent_at=timezone.now(),
                                 message_id="<ben.1@outreach.example.com>")
    sent.refresh_from_db()
    other.refresh_from_db()
    return sent, other


@pytest.mark.parametrize("header", ["Delivered-To", "X-Original-To", "To"])
def test_a_bounce_to_our_signed_return_path_bounces_that_email_without_any_message_id(verp, header):
    anna, ben = verp
    return_path = signed_return_path(ben)
    raw = (dsn(failed="ben@brightlane.example.com", to=return_path) if header == "To"
           else dsn(failed="ben@brightlane.example.com", headers={header: return_path}))
    inbound = processed(stored(anna.mailbox, raw))
    assert (inbound.outbound_email_id, inbound.confirmation) == (ben.pk, "")
    assert "matched by return path" in inbound.classification_reasons
    assert Lead.objects.get(pk=ben.lead_id).status == Status.BOUNCED
    assert Lead.objects.get(pk=anna.lead_id).status == Status.IN_SEQUENCE


def test_a_tampered_return_path_proves_nothing(verp):
    anna, _ben = verp
    local, _, domain = signed_return_path(anna).rpartition("@")
    tampered = f"{local[:-2]}{'00' if local[-2:] != '00' else '11'}@{domain}"
    inbound = processed(stored(anna.mailbox, dsn(failed="anna@brightlane.example.com",
                                                 headers={"Delivered-To": tampered})))
    assert inbound.confirmation == NEEDED
    assert "matched by failed recipient" in inbound.classification_reasons
    untouched(anna)


def test_a_signed_return_path_of_one_email_with_another_failed_recipient_is_held(verp):
    anna, ben = verp
    inbound = processed(stored(anna.mailbox, dsn(failed="anna@brightlane.example.com",
                                                 headers={"Delivered-To": signed_return_path(ben)})))
    assert (inbound.outbound_email_id, inbound.confirmation) == (ben.pk, NEEDED)
    assert Lead.objects.get(pk=ben.lead_id).status == Status.IN_SEQUENCE
    untouched(anna)


# --- through the real IMAP server ---------------------------------------------------------------------

PASSWORD_ENV = "CAM_SECRET_TEST_IMAP_PASSWORD"


def test_bounces_read_from_the_mailbox_are_applied_only_on_proof(imap_server, verp, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    anna, ben = verp
    user = imap_server.new_user()
    Mailbox.objects.filter(pk=anna.mailbox_id).update(
        imap_host=imap_server.host, imap_port=imap_server.port, imap_security="none", imap_username=user,
        imap_password_env=PASSWORD_ENV)
    mailbox = Mailbox.objects.get(pk=anna.mailbox_id)
    assert inbox_poll(mailbox=mailbox)["fetched"] == 0  # the inbox is read from here on
    imap_server.append(user, dsn(failed="anna@brightlane.example.com"))  # forged
    imap_server.append(user, dsn(failed="ben@brightlane.example.com",
                                 headers={"Delivered-To": signed_return_path(ben)}).replace(b"dsn.1@", b"dsn.2@"))

    assert inbox_poll(mailbox=mailbox)["stored"] == 2
    replies_process()

    forged, genuine = InboundEmail.objects.order_by("uid")
    assert (forged.lead_id, forged.confirmation) == (anna.lead_id, NEEDED)
    assert (genuine.outbound_email_id, genuine.confirmation) == (ben.pk, "")
    untouched(anna)
    assert Lead.objects.get(pk=ben.lead_id).status == Status.BOUNCED


def text_bounce(*, to: str, failed: list[str]) -> bytes:
    """A mail server's bounce in words only (no report part), listing ``failed``."""
    lines = ["From: Mail Delivery System <MAILER-DAEMON@mx.brightlane.example.com>", f"To: {to}",
             "Subject: Mail delivery failed: returning message to sender", "Message-ID: <text.1@mx.example>", "",
             "A message that you sent could not be delivered to one or more of its recipients.",
             "This is a permanent error. The following address(es) failed:", "",
             *(f"  {address}" for address in failed), "    550 5.1.1 user unknown" if failed else "", "",
             "" if failed else "Your message could not be delivered: 550 5.1.1 user unknown.", ""]
    return "\r\n".join(lines).encode()


def test_a_signed_return_path_names_the_failed_recipient_exactly(verp):
    anna, ben = verp
    raw = text_bounce(to=signed_return_path(ben), failed=["ops@brightlane.example.com", "ben@brightlane.example.com"])
    inbound = processed(stored(anna.mailbox, raw))
    assert (inbound.outbound_email_id, inbound.failed_recipients) == (ben.pk, ["ben@brightlane.example.com"])
    assert any("the others are not ours" in reason for reason in inbound.classification_reasons)
    assert Lead.objects.get(pk=ben.lead_id).status == Status.BOUNCED


def test_a_report_naming_nobody_fails_the_address_our_email_went_to(verp):
    anna, ben = verp
    inbound = processed(stored(anna.mailbox, text_bounce(to=signed_return_path(ben), failed=[])))
    assert (inbound.category, inbound.failed_recipients) == (Category.BOUNCE_HARD, ["ben@brightlane.example.com"])
    assert any("the address our email went to" in reason for reason in inbound.classification_reasons)


def test_a_report_naming_someone_else_is_held_even_on_our_return_path(verp):
    anna, ben = verp
    raw = text_bounce(to=signed_return_path(ben), failed=["forwarded@elsewhere.example"])
    inbound = processed(stored(anna.mailbox, raw))
    assert (inbound.failed_recipients, inbound.confirmation) == (["forwarded@elsewhere.example"], NEEDED)
    assert Lead.objects.get(pk=ben.lead_id).status == Status.IN_SEQUENCE


# --- stray NUL and control bytes: still a message, stored without them ---------------------------------


def test_a_bounce_with_nul_bytes_is_read_stored_and_applied(sent):
    """PostgreSQL refuses NUL in text and JSON: nothing read from the message keeps one."""
    raw = dsn(failed="anna@brightlane.example.com", message_id=sent.message_id)
    raw = raw.replace(b"Subject: Undelivered Mail", b"Subject: Undelivered\x00 Mail").replace(
        b"550 5.1.1 User unknown", b"550 5.1.1 User\x00 unknown\x01") + b"\x00\x00"
    inbound = processed(stored(sent.mailbox, raw))
    assert (inbound.category, inbound.confirmation, inbound.failed_recipients) == (
        Category.BOUNCE_HARD, "", ["anna@brightlane.example.com"])
    assert bytes(inbound.raw_message) == raw  # the bytes as they came, in a binary column
    stored_text = json.dumps([inbound.subject, inbound.new_text, inbound.classification_reasons])
    assert "\\u0000" not in stored_text and "Undelivered Mail" in inbound.subject
    assert Lead.objects.get(pk=sent.lead_id).status == Status.BOUNCED


# --- the corpus: real reports of our mail prove it; the same reports about mail we never sent do not ---


def corpus_case(name: str, *, ours: bool) -> tuple[OutboundEmail, InboundEmail]:
    """The corpus report ``name`` arriving in the mailbox it was written to (lena.fischer@brightloop…),
    about an email to the address it names. ``ours``: that email is the one the report is about — its
    Message-ID is the one the report carries, or, for a report that carries none (text only, its
    attachment cut), the report came back to the email's signed return path, as a bounce of our own
    mail would. Otherwise we wrote to that address, but the report names none of our emails."""
    raw = (CORPUS / name).read_bytes()
    expected = EXPECTED[name]
    parsed = parse_message(raw)
    carried = [*embedded_message_ids(message_from_raw(raw)), parsed.in_reply_to]
    carried = [value for value in carried if value]
    mailbox = MailboxFactory(from_email="lena.fischer@brightloop.example", verp_return_path=True)
    lead = LeadFactory(email=(expected["failed_recipients"] or ["hidden.recipient@example.org"])[0],
                       status=Status.IN_SEQUENCE, current_step=1)
    step = SequenceStepFactory(campaign=lead.campaign, position=1)
    outbound = OutboundEmailFactory(lead=lead, campaign=lead.campaign, step=step, mailbox=mailbox, status="SENT",
                                    sent_at=timezone.now() - timedelta(days=1),
                                    message_id=carried[0] if ours and carried else "<ours.1@brightloop.example>")
    if ours and not carried:
        newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
        raw = f"Delivered-To: {signed_return_path(outbound)}".encode() + newline + raw
    return outbound, processed(stored(mailbox, raw))


@pytest.mark.parametrize("name", REPORTS)
def test_every_corpus_report_of_our_own_mail_is_applied(name):
    outbound, inbound = corpus_case(name, ours=True)
    assert (inbound.category, inbound.confirmation, inbound.outbound_email_id) == (
        EXPECTED[name]["category"], "", outbound.pk), inbound.classification_reasons
    lead = Lead.objects.get(pk=outbound.lead_id)
    # The report's own recipient, or (a feedback loop hid it) the address our email went to.
    assert inbound.failed_recipients == (EXPECTED[name]["failed_recipients"] or [lead.email])
    outbound.refresh_from_db()
    if inbound.category == Category.BOUNCE_SOFT:
        assert (lead.status, outbound.status, outbound.soft_bounces) == (Status.IN_SEQUENCE, "RETRY", 1)
    else:
        assert lead.status == (Status.BOUNCED if inbound.category == Category.BOUNCE_HARD else Status.UNSUBSCRIBED)
        assert Suppression.objects.filter(email=lead.email).exists()


@pytest.mark.parametrize("name", sorted(set(REPORTS) - set(NAMING_NOBODY)))
def test_every_corpus_report_naming_none_of_our_emails_is_held(name):
    outbound, inbound = corpus_case(name, ours=False)
    assert (inbound.category, inbound.confirmation, inbound.lead_id) == (
        EXPECTED[name]["category"], NEEDED, outbound.lead_id), inbound.classification_reasons
    outbound.refresh_from_db()
    assert Lead.objects.get(pk=outbound.lead_id).status == Status.IN_SEQUENCE
    assert (outbound.status, outbound.soft_bounces) == ("SENT", 0)
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("name", NAMING_NOBODY)
def test_a_report_that_hides_its_recipient_and_names_none_of_our_emails_changes_nothing(name):
    outbound, inbound = corpus_case(name, ours=False)
    assert (inbound.category, inbound.lead_id, inbound.failed_recipients) == (EXPECTED[name]["category"], None, [])
    assert Lead.objects.get(pk=outbound.lead_id).status == Status.IN_SEQUENCE
    assert not Suppression.objects.exists()
