"""Each alert transport against a real server on loopback: what arrives, and which failures are permanent."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from cam.alerts.email import EmailTransport
from cam.alerts.noop import NoopTransport
from cam.alerts.slack import SlackTransport
from cam.alerts.transports import TRANSPORTS, TransportError, get_transport
from cam.alerts.webhook import WebhookTransport, verify_signature
from cam.models import AlertChannel, HumanAlertLog
from tests.factories import (
    AlertChannelFactory,
    CampaignFactory,
    HumanAlertLogFactory,
    InboundEmailFactory,
    LeadFactory,
)
from tests.servers.http import ReceivedRequest, Reply
from tests.servers.smtp import free_port

pytestmark = pytest.mark.django_db
Kind = AlertChannel.Kind
SLACK_PATH = "/services/T0001/B0001/s3cr3t"
HOOK_PATH = "/hooks/cam"
SECRET = "whs-7f3a-long-random-secret"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.AICMO_CAM_PUBLIC_URL = "https://cam.example.com"


def positive_reply_alert(**fields) -> HumanAlertLog:
    campaign = CampaignFactory(name="DACH founders")
    lead = LeadFactory(campaign=campaign, email="anna@brightlane.example.com")
    reply = InboundEmailFactory(lead=lead)
    values = {"alert_type": HumanAlertLog.AlertType.POSITIVE_REPLY, "title": "Anna Berg (Brightlane) is interested",
              "body": "Sounds good & yes, <call> me on Tuesday.", "campaign": campaign, "lead": lead,
              "inbound_email": reply, **fields}
    return HumanAlertLogFactory(**values)


def links_of(alert: HumanAlertLog) -> dict[str, str]:
    return {"reply": f"https://cam.example.com/admin/cam/reply/{alert.inbound_email_id}/thread/",
            "lead": f"https://cam.example.com/admin/cam/lead/{alert.lead_id}/change/",
            "campaign": f"https://cam.example.com/admin/cam/campaign/{alert.campaign_id}/change/"}


def slack_channel(http_server, monkeypatch, **fields) -> AlertChannel:
    monkeypatch.setenv("CAM_SECRET_SLACK_URL", http_server.url(SLACK_PATH))
    return AlertChannelFactory(kind=Kind.SLACK, recipients="", url_env="CAM_SECRET_SLACK_URL", **fields)


def webhook_channel(http_server, monkeypatch, **fields) -> AlertChannel:
    monkeypatch.setenv("CAM_SECRET_HOOK_URL", http_server.url(HOOK_PATH))
    monkeypatch.setenv("CAM_SECRET_HOOK_SECRET", SECRET)
    return AlertChannelFactory(kind=Kind.WEBHOOK, recipients="", url_env="CAM_SECRET_HOOK_URL",
                               secret_env="CAM_SECRET_HOOK_SECRET", **fields)


def failure(send) -> TransportError:
    with pytest.raises(TransportError) as caught:
        send()
    return caught.value


# --- registry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "transport_class"), [
    (Kind.EMAIL, EmailTransport), (Kind.SLACK, SlackTransport), (Kind.WEBHOOK, WebhookTransport),
    (Kind.NONE, NoopTransport),
])
def test_it_picks_the_transport_of_the_channel_kind(kind, transport_class):
    assert type(get_transport(kind)) is transport_class
    assert transport_class.kind == kind


def test_it_has_a_transport_for_every_channel_kind():
    assert set(TRANSPORTS) == set(Kind.values)


def test_it_refuses_an_unknown_kind():
    with pytest.raises(LookupError, match="carrier-pigeon"):
        get_transport("carrier-pigeon")


# --- Slack ------------------------------------------------------------------------------------------


def test_it_posts_the_alert_to_slack(http_server, monkeypatch):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    alert = positive_reply_alert()
    SlackTransport().send(alert, slack_channel(http_server, monkeypatch))

    (request,) = http_server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    links = links_of(alert)
    assert request.json() == {
        "text": "Anna Berg (Brightlane) is interested",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Anna Berg (Brightlane) is interested*"}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": "Sounds good &amp; yes, &lt;call&gt; me on Tuesday."}},
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"<{links['reply']}|Open the conversation> · <{links['lead']}|Open the lead> · "
                f"<{links['campaign']}|Open the campaign>")}},
        ],
    }


def test_it_sends_an_alert_without_body_or_links_to_slack_as_its_title_alone(http_server, monkeypatch):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    alert = HumanAlertLogFactory(alert_type=HumanAlertLog.AlertType.WORKER_STALE, title="No worker for 5 min",
                                 body="")
    SlackTransport().send(alert, slack_channel(http_server, monkeypatch))
    assert http_server.requests[0].json() == {
        "text": "No worker for 5 min",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*No worker for 5 min*"}}]}


@pytest.mark.parametrize(("reply", "answer"), [
    (Reply(404, "no_service"), "404 Not Found"),
    (Reply(403, "invalid_token"), "403 Forbidden"),
    (Reply(410, "channel_is_archived"), "410 Gone"),
    (Reply(400, "invalid_payload"), "400 Bad Request"),
])
def test_it_calls_a_slack_refusal_permanent(http_server, monkeypatch, reply, answer):
    http_server.reply(SLACK_PATH, reply)
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), slack_channel(http_server, monkeypatch)))
    assert error.permanent
    assert str(error) == f"The Slack webhook answered {answer}."


@pytest.mark.parametrize("reply", [Reply(429, "rate_limited", headers={"Retry-After": "30"}),
                                   Reply(500, "rollup_error"), Reply(503, "")])
def test_it_calls_a_slack_overload_transient(http_server, monkeypatch, reply):
    http_server.reply(SLACK_PATH, reply)
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), slack_channel(http_server, monkeypatch)))
    assert not error.permanent
    assert str(error).startswith(f"The Slack webhook answered {reply.status}")


def test_it_calls_a_slack_timeout_transient(http_server, monkeypatch, settings):
    settings.AICMO_CAM_ALERT_TIMEOUT_SECONDS = 0.3
    http_server.reply(SLACK_PATH, Reply(200, "ok", delay=3))
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), slack_channel(http_server, monkeypatch)))
    assert not error.permanent
    assert str(error) == "The Slack webhook did not answer within 0.3 s."


def test_it_calls_an_unreachable_slack_transient_without_showing_the_secret_url(monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SLACK_URL", f"http://127.0.0.1:{free_port()}{SLACK_PATH}")
    channel = AlertChannelFactory(kind=Kind.SLACK, url_env="CAM_SECRET_SLACK_URL")
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), channel))
    assert not error.permanent
    assert str(error).startswith("Could not reach the Slack webhook:")
    assert "Connection refused" in str(error)
    assert "s3cr3t" not in str(error)


def test_it_calls_a_missing_slack_url_variable_permanent_and_names_it(monkeypatch):
    monkeypatch.delenv("CAM_SECRET_SLACK_URL", raising=False)
    channel = AlertChannelFactory(name="Sales Slack", kind=Kind.SLACK, url_env="CAM_SECRET_SLACK_URL")
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error) == ("The environment variable CAM_SECRET_SLACK_URL for the Slack webhook URL of alert channel "
                          "'Sales Slack' is not set.")


def test_it_calls_a_slack_url_that_is_no_url_permanent_without_repeating_it(monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SLACK_URL", "hooks.slack.com/services/T/B/s3cr3t")
    channel = AlertChannelFactory(kind=Kind.SLACK, url_env="CAM_SECRET_SLACK_URL")
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error) == "The environment variable CAM_SECRET_SLACK_URL does not hold an http(s) URL."


# --- signed webhook ---------------------------------------------------------------------------------


def receiver(secret: str):
    """A receiving service that checks the signature the way docs/alerts.md tells it to."""

    def respond(request: ReceivedRequest) -> Reply:
        timestamp = request.headers.get("x-cam-timestamp", "")
        signature = request.headers.get("x-cam-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return Reply(401, {"error": "stale"})
        expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return Reply(401, {"error": "bad signature"})
        return Reply(204)

    return respond


def test_it_posts_the_alert_signed_to_the_webhook(http_server, monkeypatch):
    http_server.reply(HOOK_PATH, receiver(SECRET))
    alert = positive_reply_alert()
    WebhookTransport().send(alert, webhook_channel(http_server, monkeypatch))

    (request,) = http_server.requests
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "id": alert.pk, "type": "POSITIVE_REPLY", "title": "Anna Berg (Brightlane) is interested",
        "body": "Sounds good & yes, <call> me on Tuesday.", "created_at": alert.created_at.isoformat(),
        "links": links_of(alert)}
    assert abs(int(request.headers["x-cam-timestamp"]) - time.time()) < 10
    assert verify_signature(SECRET, timestamp=request.headers["x-cam-timestamp"],
                            signature=request.headers["x-cam-signature"], body=request.body)


def test_it_is_refused_by_a_receiver_with_another_secret(http_server, monkeypatch):
    http_server.reply(HOOK_PATH, receiver("a-different-secret"))
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(),
                                                    webhook_channel(http_server, monkeypatch)))
    assert error.permanent
    assert str(error) == "The webhook answered 401 Unauthorized."


def test_it_verifies_a_signature_only_for_the_same_body_secret_and_a_recent_time():
    body = json.dumps({"id": 1}).encode()
    now = time.time()
    timestamp = str(int(now))
    signature = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, timestamp=timestamp, signature=signature, body=body, now=now)
    assert not verify_signature(SECRET, timestamp=timestamp, signature=signature, body=body + b" ", now=now)
    assert not verify_signature("other", timestamp=timestamp, signature=signature, body=body, now=now)
    assert not verify_signature(SECRET, timestamp=timestamp, signature=signature, body=body, now=now + 301)
    assert not verify_signature(SECRET, timestamp="soon", signature=signature, body=body, now=now)


def test_it_calls_a_missing_signing_secret_permanent(http_server, monkeypatch):
    http_server.reply(HOOK_PATH, Reply(204))
    channel = webhook_channel(http_server, monkeypatch, name="Ops hook")
    monkeypatch.delenv("CAM_SECRET_HOOK_SECRET")
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert "CAM_SECRET_HOOK_SECRET" in str(error)
    assert http_server.requests == []


@pytest.mark.parametrize(("reply", "permanent"), [(Reply(404), True), (Reply(422), True), (Reply(429), False),
                                                  (Reply(502), False)])
def test_it_maps_webhook_answers_like_slack(http_server, monkeypatch, reply, permanent):
    http_server.reply(HOOK_PATH, reply)
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(),
                                                    webhook_channel(http_server, monkeypatch)))
    assert error.permanent is permanent


def test_it_does_not_follow_a_webhook_redirect(http_server, monkeypatch):
    http_server.reply(HOOK_PATH, Reply(301, headers={"Location": "http://127.0.0.1:9/elsewhere"}))
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(),
                                                    webhook_channel(http_server, monkeypatch)))
    assert error.permanent
    assert [request.path for request in http_server.requests] == [HOOK_PATH]


# --- where a Slack or webhook channel may post (cam.egress) ------------------------------------------


def test_it_refuses_a_slack_url_on_loopback_with_the_allow_list_empty(no_egress_allowed, http_server, monkeypatch):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    error = failure(lambda: SlackTransport().send(positive_reply_alert(), slack_channel(http_server, monkeypatch)))
    assert error.permanent
    assert str(error) == ("Not sent to the Slack webhook: refused: 127.0.0.1 is a loopback address; add 127.0.0.1 "
                          "to AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.")
    assert "s3cr3t" not in str(error)
    assert http_server.requests == []


def test_it_refuses_a_webhook_host_that_resolves_to_a_private_address(no_egress_allowed, dns, monkeypatch):
    dns["hooks.example.test"] = ["172.20.0.7"]
    monkeypatch.setenv("CAM_SECRET_HOOK_URL", "https://hooks.example.test/cam")
    monkeypatch.setenv("CAM_SECRET_HOOK_SECRET", SECRET)
    channel = AlertChannelFactory(kind=Kind.WEBHOOK, url_env="CAM_SECRET_HOOK_URL", secret_env="CAM_SECRET_HOOK_SECRET")
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error) == ("Not sent to the webhook: refused: hooks.example.test resolves to 172.20.0.7, a private "
                          "address; add hooks.example.test to AICMO_CAM_EGRESS_ALLOW if this internal destination "
                          "is deliberate.")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/"])
def test_it_refuses_a_webhook_to_cloud_metadata(settings, monkeypatch, url):
    settings.AICMO_CAM_EGRESS_ALLOW = ["169.254.0.0/16", "metadata.google.internal"]
    monkeypatch.setenv("CAM_SECRET_HOOK_URL", url)
    monkeypatch.setenv("CAM_SECRET_HOOK_SECRET", SECRET)
    channel = AlertChannelFactory(kind=Kind.WEBHOOK, url_env="CAM_SECRET_HOOK_URL", secret_env="CAM_SECRET_HOOK_SECRET")
    error = failure(lambda: WebhookTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error).endswith("which is never allowed.")


@pytest.mark.parametrize("status", [403, 500])
def test_it_keeps_no_word_of_what_a_slack_or_webhook_error_said(http_server, monkeypatch, status):
    leak = "DATABASE_URL=postgres://cam:Pa55w0rd-internal@db.internal:5432/cam"
    http_server.reply(SLACK_PATH, Reply(status, leak))
    http_server.reply(HOOK_PATH, Reply(status, {"debug": leak}))
    alert = positive_reply_alert()
    errors = [failure(lambda: SlackTransport().send(alert, slack_channel(http_server, monkeypatch))),
              failure(lambda: WebhookTransport().send(alert, webhook_channel(http_server, monkeypatch)))]
    phrase = "Forbidden" if status == 403 else "Internal Server Error"
    assert [str(error) for error in errors] == [f"The Slack webhook answered {status} {phrase}.",
                                                f"The webhook answered {status} {phrase}."]


# --- email ------------------------------------------------------------------------------------------


def test_it_emails_the_alert_to_the_channel_recipients(smtp_server, smtp_settings):
    alert = positive_reply_alert()
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com, Founder@cam.example.com")
    EmailTransport().send(alert, channel)

    (received,) = smtp_server.messages
    assert received.mail_from == "cam@cam.example.com"
    assert received.rcpt_tos == ["sales@cam.example.com", "Founder@cam.example.com"]
    message = received.parsed
    assert message["Subject"] == "Anna Berg (Brightlane) is interested"
    assert message["To"] == "sales@cam.example.com, Founder@cam.example.com"
    links = links_of(alert)
    assert message.get_content() == (
        "Sounds good & yes, <call> me on Tuesday.\n\n"
        f"Open the conversation: {links['reply']}\n"
        f"Open the lead: {links['lead']}\n"
        f"Open the campaign: {links['campaign']}\n")


def test_it_emails_an_alert_without_channel_to_the_alert_emails_setting(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com", "ops@cam.example.com"]
    campaign = CampaignFactory()
    alert = HumanAlertLogFactory(alert_type=HumanAlertLog.AlertType.CAMPAIGN_PAUSED, campaign=campaign,
                                 title="Campaign paused: hard bounces 7.5 % > 5 %", body="Paused by a rule.")
    EmailTransport().send(alert, None)

    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["owner@cam.example.com", "ops@cam.example.com"]
    assert received.parsed["Subject"] == "Campaign paused: hard bounces 7.5 % > 5 %"
    assert received.parsed.get_content() == (
        f"Paused by a rule.\n\nOpen the campaign: https://cam.example.com/admin/cam/campaign/{campaign.pk}/change/\n")


def test_it_calls_an_empty_alert_emails_setting_permanent_when_there_is_no_channel(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = []
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), None))
    assert error.permanent
    assert "AICMO_CAM_ALERT_EMAILS is empty" in str(error)
    assert smtp_server.received == []


@pytest.mark.parametrize(("recipients", "message"), [
    ("sales@cam.example.com, not-an-address", "Alert channel 'Sales' has a bad recipient: 'not-an-address' is not "
                                               "an email address."),
    (" , ", "Alert channel 'Sales' has no recipients."),
])
def test_it_calls_bad_channel_recipients_permanent(smtp_server, smtp_settings, recipients, message):
    channel = AlertChannelFactory(name="Sales", kind=Kind.EMAIL, recipients=recipients)
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error) == message
    assert smtp_server.received == []


def test_it_calls_a_refused_recipient_permanent(smtp_server, smtp_settings):
    smtp_server.answer_rcpt("gone@cam.example.com", "550 5.1.1 No such user")
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="gone@cam.example.com")
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), channel))
    assert error.permanent
    assert str(error) == "The mail server refused the recipients: gone@cam.example.com: 550 5.1.1 No such user"


def test_it_calls_a_greylisted_recipient_transient(smtp_server, smtp_settings):
    smtp_server.answer_rcpt("busy@cam.example.com", "450 4.2.0 Greylisted, try again")
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="busy@cam.example.com")
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), channel))
    assert not error.permanent


@pytest.mark.parametrize(("reply", "permanent"), [("554 5.7.1 Message rejected as spam", True),
                                                  ("451 4.3.0 Try again later", False)])
def test_it_maps_a_refused_message_by_its_reply_code(smtp_server, smtp_settings, reply, permanent):
    smtp_server.answer_data(reply)
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com")
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), channel))
    assert error.permanent is permanent
    assert str(error) == f"The mail server refused the alert: {reply}"


def test_it_calls_an_unreachable_mail_server_transient(settings, smtp_settings):
    settings.EMAIL_PORT = free_port()
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com")
    error = failure(lambda: EmailTransport().send(positive_reply_alert(), channel))
    assert not error.permanent
    assert str(error).startswith(f"Could not reach the mail server 127.0.0.1:{settings.EMAIL_PORT}: "
                                 "ConnectionRefusedError")


def test_it_prints_alert_emails_with_the_default_console_backend(settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    EmailTransport().send(positive_reply_alert(), None)
    printed = capsys.readouterr().out
    assert "Subject: Anna Berg (Brightlane) is interested" in printed
    assert "To: owner@cam.example.com" in printed


# --- none -------------------------------------------------------------------------------------------


def test_it_only_logs_an_alert_for_the_none_channel(caplog):
    alert = positive_reply_alert()
    with caplog.at_level("INFO", logger="cam.alerts.noop"):
        NoopTransport().send(alert, AlertChannelFactory(name="Quiet", kind=Kind.NONE))
    assert caplog.messages == [f"Alert {alert.pk} (POSITIVE_REPLY) for channel Quiet: "
                               "Anna Berg (Brightlane) is interested"]
