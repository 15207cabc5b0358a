"""Resend's tracking webhook: signed requests only, each event kept once, and what each event changes."""

import base64
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anymail.signals import AnymailTrackingEvent
from django.test import Client
from django.utils import timezone
from svix.webhooks import Webhook

from cam.models import Lead, OutboundEmail, ProviderEvent, Suppression
from cam.outreach.events import provider_event_received
from tests.factories import CampaignFactory, LeadFactory, OutboundEmailFactory

pytestmark = pytest.mark.django_db

URL = "/webhooks/resend/tracking/"
SECRET = "whsec_" + base64.b64encode(b"cam-test-resend-signing-secret!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else's-signing-secret!!").decode()
MESSAGE_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
Status = Lead.Status
Email = OutboundEmail.Status
BOUNCE_MESSAGE = ("The recipient's email provider sent a hard bounce message, but didn't specify the reason for "
                  "the hard bounce. We recommend removing the recipient's email address from your mailing list.")


@pytest.fixture(autouse=True)
def signing_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "RESEND_SIGNING_SECRET": SECRET}


@pytest.fixture
def lead():
    return LeadFactory(email="jane.doe@acme.test", status=Status.IN_SEQUENCE, current_step=1,
                       next_send_at=timezone.now())


@pytest.fixture
def sent(lead):
    return OutboundEmailFactory(lead=lead, status=Email.SENT, provider="resend", provider_message_id=MESSAGE_ID,
                                sent_at=timezone.now())


def resend_event(event_type: str, *, email_id: str = MESSAGE_ID, to: str = "jane.doe@acme.test", **data) -> dict:
    """A payload shaped like Resend's (see anymail's tests of its Resend webhook)."""
    return {
        "type": event_type,
        "created_at": "2026-11-20T10:15:30.123Z",
        "data": {
            "created_at": "2026-11-20T10:15:29.000Z",
            "email_id": email_id,
            "from": "Alex Sender <sender@outreach.test>",
            "to": [to],
            "subject": "Quick question",
            **data,
        },
    }


def post(payload: dict, *, svix_id: str = "msg_2pZ7kQyBq1RkC9vL0cY8hT3mN4a", secret: str | None = SECRET,
         sent_at: datetime | None = None, body: str | None = None):
    """POST as Resend does: JSON signed per svix (HMAC-SHA256 of "id.timestamp.body")."""
    data = json.dumps(payload)
    headers = {"svix-id": svix_id}
    if secret:
        sent_at = sent_at or datetime.now(UTC)
        headers["svix-timestamp"] = str(int(sent_at.timestamp()))
        headers["svix-signature"] = Webhook(secret).sign(svix_id, sent_at, data)
    return Client(enforce_csrf_checks=True).post(URL, data=body if body is not None else data,
                                                 content_type="application/json", headers=headers)


def test_it_records_a_delivery_on_the_email(sent):
    payload = resend_event("email.delivered")

    response = post(payload)

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.delivered_at == datetime(2026, 11, 20, 10, 15, 30, 123000, tzinfo=UTC)
    assert sent.status == Email.SENT
    event = ProviderEvent.objects.get()
    assert (event.provider, event.event_id, event.event_type) == ("resend", "msg_2pZ7kQyBq1RkC9vL0cY8hT3mN4a",
                                                                  "delivered")
    assert (event.provider_message_id, event.outbound_email, event.recipient) == (MESSAGE_ID, sent,
                                                                                  "jane.doe@acme.test")
    assert event.payload == payload
    assert event.occurred_at == datetime(2026, 11, 20, 10, 15, 30, 123000, tzinfo=UTC)
    assert not Suppression.objects.exists()


def test_it_marks_the_lead_bounced_and_suppresses_the_address_on_a_bounce(lead, sent):
    pending = OutboundEmailFactory(lead=lead, status=Email.PENDING)
    elsewhere = LeadFactory(email=lead.email, campaign=CampaignFactory(), status=Status.NEW)

    response = post(resend_event("email.bounced", bounce={"message": BOUNCE_MESSAGE, "subType": "General",
                                                          "type": "Permanent"}))

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == Email.SENT
    lead.refresh_from_db()
    assert lead.status == Status.BOUNCED
    assert lead.status_reason == "The address hard-bounced (Resend webhook, event msg_2pZ7kQyBq1RkC9vL0cY8hT3mN4a)."
    assert lead.next_send_at is None
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("jane.doe@acme.test", Suppression.Reason.HARD_BOUNCE)
    assert suppression.source == "Resend webhook, event msg_2pZ7kQyBq1RkC9vL0cY8hT3mN4a"
    assert OutboundEmail.objects.get(pk=pending.pk).status == Email.CANCELLED
    assert Lead.objects.get(pk=elsewhere.pk).status == Status.BOUNCED
    event = ProviderEvent.objects.get()
    assert (event.event_type, event.description, event.outbound_email) == ("bounced", BOUNCE_MESSAGE, sent)


def test_it_unsubscribes_the_lead_with_a_complaint_suppression_on_a_complaint(lead, sent):
    pending = OutboundEmailFactory(lead=lead, status=Email.RETRY)

    response = post(resend_event("email.complained"))

    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.status == Status.UNSUBSCRIBED
    assert lead.status_reason.startswith("The address marked our email as spam")
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("jane.doe@acme.test", Suppression.Reason.COMPLAINT)
    assert OutboundEmail.objects.get(pk=pending.pk).status == Email.CANCELLED
    assert OutboundEmail.objects.get(pk=sent.pk).status == Email.SENT


def test_it_keeps_one_event_and_one_suppression_when_the_same_event_arrives_twice(lead, sent):
    payload = resend_event("email.bounced", bounce={"message": BOUNCE_MESSAGE})
    first = post(payload)
    lead.refresh_from_db()
    changed_at = lead.status_changed_at

    # svix re-delivers with the same svix-id and a new timestamp and signature.
    again = post(payload, sent_at=datetime.now(UTC) + timedelta(seconds=30))

    assert (first.status_code, again.status_code) == (200, 200)
    assert ProviderEvent.objects.count() == 1
    assert Suppression.objects.count() == 1
    lead.refresh_from_db()
    assert lead.status_changed_at == changed_at


def test_it_keeps_a_second_event_about_the_same_address_without_a_second_suppression(lead, sent):
    assert post(resend_event("email.complained"), svix_id="msg_first").status_code == 200
    assert post(resend_event("email.complained"), svix_id="msg_second").status_code == 200

    assert ProviderEvent.objects.count() == 2
    assert Suppression.objects.count() == 1


@pytest.mark.parametrize(
    "how",
    ["unsigned", "signed with another secret", "body changed after signing", "signed too long ago"],
)
def test_it_refuses_a_request_resend_did_not_sign_and_stores_nothing(lead, sent, how):
    payload = resend_event("email.complained")
    kwargs = {
        "unsigned": {"secret": None},
        "signed with another secret": {"secret": OTHER_SECRET},
        "body changed after signing": {"body": json.dumps(resend_event("email.complained", to="x@acme.test"))},
        "signed too long ago": {"sent_at": datetime.now(UTC) - timedelta(minutes=10)},
    }[how]

    response = post(payload, **kwargs)

    assert response.status_code == 400
    assert not ProviderEvent.objects.exists()
    assert not Suppression.objects.exists()
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE


def post_signed(body: str | bytes, *, svix_id: str = "msg_odd_body"):
    """A body of any kind, signed as Resend signs: only its content is wrong."""
    sent_at = datetime.now(UTC)
    text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
    headers = {"svix-id": svix_id, "svix-timestamp": str(int(sent_at.timestamp())),
               "svix-signature": Webhook(SECRET).sign(svix_id, sent_at, text)}
    return Client().post(URL, data=body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("body", [
    "this is not json", "{", '["email.bounced"]', '"email.bounced"', "null", '{"data": {}}', '{"type": 42}',
    '{"type": "email.bounced", "data": {"headers": [1, 2]}}', "[" * 5000,
], ids=["text", "cut", "array", "string", "null", "no type", "odd type", "odd headers", "deep"])
def test_a_signed_body_that_is_not_an_event_is_a_json_400(lead, sent, body):
    response = post_signed(body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not")
    assert not ProviderEvent.objects.exists()


def test_a_bad_signature_is_one_warning_naming_the_reason_without_a_traceback(sent, caplog):
    with caplog.at_level(logging.INFO):
        response = post(resend_event("email.complained"), secret=OTHER_SECRET)

    assert response.status_code == 400
    assert response.json() == {"detail": "The request's signature could not be verified."}
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        (logging.WARNING, "Resend webhook refused: the signature does not check out (No matching signature found)")]
    assert not any(record.exc_info for record in caplog.records)


def test_it_refuses_every_request_while_no_signing_secret_is_configured(settings, lead, sent):
    settings.ANYMAIL = {**settings.ANYMAIL, "RESEND_SIGNING_SECRET": None}

    for secret in (SECRET, None):
        assert post(resend_event("email.complained"), secret=secret).status_code == 400

    assert not ProviderEvent.objects.exists()
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE


def test_it_stores_an_event_for_a_message_it_did_not_send_and_changes_nothing_else(lead, sent):
    pending = OutboundEmailFactory(lead=lead, status=Email.PENDING)

    response = post(resend_event("email.bounced", email_id="0b7c7a5e-unknown", to=lead.email,
                                 bounce={"message": BOUNCE_MESSAGE}))

    assert response.status_code == 200
    event = ProviderEvent.objects.get()
    assert (event.provider_message_id, event.outbound_email) == ("0b7c7a5e-unknown", None)
    assert not Suppression.objects.exists()
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE
    assert OutboundEmail.objects.get(pk=pending.pk).status == Email.PENDING
    assert OutboundEmail.objects.get(pk=sent.pk).delivered_at is None


def test_it_keeps_events_it_does_not_act_on(lead, sent):
    assert post(resend_event("email.opened")).status_code == 200

    assert ProviderEvent.objects.get().event_type == "opened"
    sent.refresh_from_db()
    assert sent.delivered_at is None
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE


def test_it_ignores_tracking_events_from_other_providers(sent):
    event = AnymailTrackingEvent(event_type="bounced", message_id=MESSAGE_ID, event_id="evt-1",
                                 recipient="jane.doe@acme.test", esp_event={})

    provider_event_received(sender=None, event=event, esp_name="Mailgun")

    assert not ProviderEvent.objects.exists()
    assert not Suppression.objects.exists()


def fresh_process(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the project's folder, in a process of its own with a bare environment and ``environment``."""
    root = Path(__file__).resolve().parents[2]
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**base, "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}", **environment})


def test_it_refuses_to_start_with_an_unreadable_signing_secret():
    result = fresh_process("manage.py", "check", AICMO_RESEND_WEBHOOK_SECRET="whsec_abcde")

    assert result.returncode != 0
    assert "AICMO_RESEND_WEBHOOK_SECRET is not valid" in result.stderr
    assert "abcde" not in result.stderr


def test_the_signature_checker_is_loaded_by_the_webhooks_first_request_not_by_every_command():
    # svix, which checks the signatures, took a quarter of the start of every management command.
    code = ("import sys, django; django.setup(); from django.core.management import call_command; "
            "call_command('check'); print('svix loaded:', 'svix' in sys.modules)")
    result = fresh_process("-c", code, DJANGO_SETTINGS_MODULE="aicmo_site.settings")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "svix loaded: False"


def test_it_applies_an_event_that_arrived_before_the_send_was_recorded(lead):
    # The webhook beat the sender's bookkeeping: nothing knew the message id yet.
    assert post(resend_event("email.bounced", bounce={"message": BOUNCE_MESSAGE})).status_code == 200
    assert ProviderEvent.objects.get().outbound_email is None
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE

    from cam.outreach.events import provider_events_link

    email = OutboundEmailFactory(lead=lead, status=Email.SENT, provider="resend", provider_message_id=MESSAGE_ID)
    assert provider_events_link(outbound_emails=[email]) == 1
    lead.refresh_from_db()
    assert lead.status == Status.BOUNCED
    assert ProviderEvent.objects.get().outbound_email == email
    assert provider_events_link(outbound_emails=[email]) == 0
