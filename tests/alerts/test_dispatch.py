"""Queuing alerts (one row per target, once per key) and dispatching them: retries, permanent failures,
and two dispatchers at once, against real servers on loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cam.alerts.service import ALERT_RETRY_WINDOW, alert_queue, alert_target_key, alerts_dispatch, alerts_failed
from cam.alerts.webhook import verify_signature
from cam.followup import reply_follow_up
from cam.models import AlertChannel, HumanAlertLog, InboundEmail
from tests.concurrency import run_at_once
from tests.factories import AlertChannelFactory, InboundEmailFactory, LeadFactory
from tests.servers.http import Reply

Kind = AlertChannel.Kind
AlertType = HumanAlertLog.AlertType
SLACK_PATH = "/services/T0001/B0001/s3cr3t"
HOOK_PATH = "/hooks/cam"
SECRET = "whs-7f3a-long-random-secret"
NOTHING = {"sent": 0, "failed_transient": 0, "failed_permanent": 0, "channels_disabled": 0, "given_up": 0}


def counts(**values: int) -> dict[str, int]:
    return {**NOTHING, **values}


@pytest.fixture(autouse=True)
def no_alert_emails(settings):
    settings.AICMO_CAM_ALERT_EMAILS = []
    settings.AICMO_CAM_PUBLIC_URL = "https://cam.example.com"


@pytest.fixture
def slack(http_server, monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SLACK_URL", http_server.url(SLACK_PATH))
    return AlertChannelFactory(name="Sales Slack", kind=Kind.SLACK, recipients="", url_env="CAM_SECRET_SLACK_URL")


@pytest.fixture
def webhook(http_server, monkeypatch):
    monkeypatch.setenv("CAM_SECRET_HOOK_URL", http_server.url(HOOK_PATH))
    monkeypatch.setenv("CAM_SECRET_HOOK_SECRET", SECRET)
    return AlertChannelFactory(name="Ops hook", kind=Kind.WEBHOOK, recipients="", url_env="CAM_SECRET_HOOK_URL",
                               secret_env="CAM_SECRET_HOOK_SECRET")


def queue(key: str = "positive-reply:inbound-1", alert_type: str = AlertType.POSITIVE_REPLY, **fields):
    values = {"title": "Anna Berg (Brightlane) is interested", "body": "Sounds good, call me on Tuesday.", **fields}
    return alert_queue(alert_type=alert_type, idempotency_key=key, **values)


def refreshed(row):
    row.refresh_from_db()
    return row


# --- queuing ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_queues_one_row_per_enabled_channel_that_takes_the_type_plus_the_alert_emails(settings):
    settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com", "ops@cam.example.com"]
    every_type = AlertChannelFactory(name="Sales", kind=Kind.EMAIL, recipients="sales@cam.example.com; b@cam.test")
    replies_only = AlertChannelFactory(name="Replies", kind=Kind.NONE, alert_types=[AlertType.POSITIVE_REPLY])
    AlertChannelFactory(name="Ops", kind=Kind.NONE, alert_types=[AlertType.WORKER_STALE])
    AlertChannelFactory(name="Off", kind=Kind.NONE, enabled=False)
    lead = LeadFactory()
    reply = InboundEmailFactory(lead=lead)

    rows = queue(key="positive-reply:inbound-7", campaign=lead.campaign, lead=lead, inbound_email=reply)

    assert [(row.channel, row.recipients, row.idempotency_key) for row in rows] == [
        (every_type, "sales@cam.example.com, b@cam.test", f"positive-reply:inbound-7|channel:{every_type.pk}"),
        (replies_only, "", f"positive-reply:inbound-7|channel:{replies_only.pk}"),
        (None, "owner@cam.example.com, ops@cam.example.com", "positive-reply:inbound-7|emails"),
    ]
    assert {(row.alert_type, row.title, row.lead, row.inbound_email, row.campaign, row.sent_successfully)
            for row in rows} == {(AlertType.POSITIVE_REPLY, "Anna Berg (Brightlane) is interested", lead, reply,
                                  lead.campaign, False)}


@pytest.mark.django_db
def test_it_leaves_the_alert_emails_out_when_the_setting_is_empty_and_a_channel_takes_the_alert(slack):
    assert [row.channel for row in queue()] == [slack]


@pytest.mark.django_db
def test_it_records_an_alert_that_has_nowhere_to_go_and_fails_it_with_the_reason(smtp_settings, smtp_server):
    (row,) = queue()
    assert row.channel is None

    assert alerts_dispatch() == counts(failed_permanent=1)
    row = refreshed(row)
    assert (row.sent_successfully, row.attempts) == (False, 1)
    assert row.failed_at is not None and row.sent_at is None
    assert "AICMO_CAM_ALERT_EMAILS is empty" in row.last_error
    assert list(alerts_failed()) == [row]
    assert smtp_server.received == []


@pytest.mark.django_db
def test_it_queues_the_same_alert_once_per_target_across_cycles(slack, settings):
    settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    first = queue(title="First wording")
    again = queue(title="Second wording")
    assert [row.pk for row in again] == [row.pk for row in first]
    assert HumanAlertLog.objects.count() == 2
    assert {row.title for row in again} == {"First wording"}


@pytest.mark.django_db
def test_it_queues_inside_the_caller_s_transaction_without_breaking_it():
    reply = InboundEmailFactory()
    with transaction.atomic():
        InboundEmail.objects.filter(pk=reply.pk).update(alert_sent=True)
        queue(key=f"positive-reply:{reply.pk}", inbound_email=reply)
        queue(key=f"positive-reply:{reply.pk}", inbound_email=reply)  # a conflict must not poison the transaction
        assert InboundEmail.objects.get(pk=reply.pk).alert_sent
    assert HumanAlertLog.objects.filter(inbound_email=reply).count() == 1


@pytest.mark.django_db
def test_it_queues_nothing_when_the_caller_s_transaction_rolls_back():
    reply = InboundEmailFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        InboundEmail.objects.filter(pk=reply.pk).update(alert_sent=True)
        queue(key=f"positive-reply:{reply.pk}", inbound_email=reply)
        raise RuntimeError("the reply's processing failed")
    assert not HumanAlertLog.objects.exists()
    assert not refreshed(reply).alert_sent


@pytest.mark.django_db
def test_it_refuses_an_unknown_alert_type_or_an_empty_key():
    with pytest.raises(ValueError, match="Unknown alert type 'PARTY'"):
        queue(alert_type="PARTY")
    with pytest.raises(ValueError, match="idempotency key"):
        queue(key="")


@pytest.mark.django_db
def test_it_keeps_long_keys_unique_within_the_column():
    long_a, long_b = "job-failed:" + "a" * 300, "job-failed:" + "a" * 299 + "b"
    key_a, key_b = alert_target_key(long_a, "emails"), alert_target_key(long_b, "emails")
    assert len(key_a) == len(key_b) == 255
    assert key_a != key_b
    assert key_a.endswith("|emails")
    queue(key=long_a, alert_type=AlertType.JOB_FAILED, title="x" * 400)
    (row,) = HumanAlertLog.objects.all()
    assert len(row.title) == 300


# --- dispatching ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_a_queued_alert_through_slack_once(http_server, slack):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    (row,) = queue()
    now = timezone.now()

    assert alerts_dispatch(now=now) == counts(sent=1)
    row = refreshed(row)
    assert (row.sent_successfully, row.sent_at, row.attempts, row.last_error) == (True, now, 1, "")
    assert http_server.requests[0].json()["text"] == "Anna Berg (Brightlane) is interested"

    assert alerts_dispatch() == counts()
    assert len(http_server.requests) == 1


@pytest.mark.django_db
def test_it_sends_a_signed_webhook_that_the_receiver_verifies(http_server, webhook):
    verified = []

    def receiver(request):
        ok = verify_signature(SECRET, timestamp=request.headers["x-cam-timestamp"],
                              signature=request.headers["x-cam-signature"], body=request.body)
        verified.append(ok)
        return Reply(204) if ok else Reply(401, "bad signature")

    http_server.reply(HOOK_PATH, receiver)
    (row,) = queue(alert_type=AlertType.CAMPAIGN_PAUSED, key="campaign-paused:1", title="Campaign paused")
    assert alerts_dispatch() == counts(sent=1)
    assert verified == [True]
    assert http_server.requests[0].json()["id"] == row.pk


@pytest.mark.django_db
def test_it_emails_an_alert_to_the_alert_emails_when_no_channel_is_configured(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    lead = LeadFactory()
    reply = InboundEmailFactory(lead=lead)
    queue(lead=lead, inbound_email=reply)

    assert alerts_dispatch() == counts(sent=1)
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["owner@cam.example.com"]
    assert received.parsed["Subject"] == "Anna Berg (Brightlane) is interested"
    assert f"Open the conversation: https://cam.example.com/admin/cam/reply/{reply.pk}/thread/" in (
        received.parsed.get_content())


@pytest.mark.django_db
def test_it_sends_to_the_channels_and_the_alert_emails_alike(smtp_server, smtp_settings, http_server, slack):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com")
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    queue()
    assert alerts_dispatch() == counts(sent=3)
    assert sorted(message.rcpt_tos[0] for message in smtp_server.messages) == ["owner@cam.example.com",
                                                                              "sales@cam.example.com"]
    assert len(http_server.requests) == 1


@pytest.mark.django_db
def test_it_fails_an_alert_for_good_and_disables_the_channel_when_slack_says_no_service(http_server, slack):
    http_server.reply(SLACK_PATH, Reply(404, "no_service"))
    (first,) = queue(key="positive-reply:1")
    (second,) = queue(key="positive-reply:2")
    now = timezone.now()

    assert alerts_dispatch(now=now) == counts(failed_permanent=1, channels_disabled=1)
    first, second, slack = refreshed(first), refreshed(second), refreshed(slack)
    assert (first.sent_successfully, first.failed_at, first.sent_at, first.attempts) == (False, now, None, 1)
    assert first.last_error == "The Slack webhook answered 404 Not Found."
    assert (slack.enabled, slack.last_error, slack.last_error_at) == (False, first.last_error, now)
    # The channel's other alert waits for a person to fix and re-enable it; the failed one is not retried.
    assert (second.sent_successfully, second.failed_at, second.attempts) == (False, None, 0)
    assert alerts_dispatch() == counts()
    assert len(http_server.requests) == 1

    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    AlertChannel.objects.filter(pk=slack.pk).update(enabled=True)
    assert alerts_dispatch() == counts(sent=1)
    assert refreshed(second).sent_successfully
    assert not refreshed(first).sent_successfully
    assert refreshed(slack).last_error == ""


@pytest.mark.django_db
def test_it_disables_a_channel_whose_url_is_refused_and_says_why(no_egress_allowed, http_server, slack):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    (row,) = queue()
    now = timezone.now()

    assert alerts_dispatch(now=now) == counts(failed_permanent=1, channels_disabled=1)
    row, slack = refreshed(row), refreshed(slack)
    assert row.last_error == ("Not sent to the Slack webhook: refused: 127.0.0.1 is a loopback address; add "
                              "127.0.0.1 to AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.")
    assert (slack.enabled, slack.last_error, slack.last_error_at) == (False, row.last_error, now)
    assert http_server.requests == []


@pytest.mark.django_db
def test_an_error_body_is_kept_nowhere_a_read_only_key_can_see(http_server, slack, webhook):
    from tests.api.conftest import client_with_key

    secret = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
    http_server.reply(SLACK_PATH, Reply(500, f"internal error, token={secret}"))
    http_server.reply(HOOK_PATH, Reply(401, {"error": "bad signature", "expected_secret": secret}))
    queue(key="positive-reply:1")

    assert alerts_dispatch() == counts(failed_transient=1, failed_permanent=1, channels_disabled=1)
    read_api = client_with_key(read_only=True)
    seen = [*HumanAlertLog.objects.values_list("last_error", flat=True),
            *AlertChannel.objects.values_list("last_error", flat=True),
            read_api.get("/api/cam/alerts/").content.decode(), read_api.get("/api/cam/metrics/").content.decode()]
    assert sorted(HumanAlertLog.objects.values_list("last_error", flat=True)) == [
        "The Slack webhook answered 500 Internal Server Error.", "The webhook answered 401 Unauthorized."]
    assert not [text for text in seen if secret in text]


@pytest.mark.django_db
def test_it_retries_a_transient_failure_on_the_next_dispatch(http_server, slack):
    http_server.reply(SLACK_PATH, Reply(500, "rollup_error"), Reply(200, "ok"))
    (row,) = queue()
    first_cycle = timezone.now()

    assert alerts_dispatch(now=first_cycle) == counts(failed_transient=1)
    row, slack = refreshed(row), refreshed(slack)
    assert (row.sent_successfully, row.failed_at, row.claimed_at, row.attempts) == (False, None, None, 1)
    assert row.last_error == "The Slack webhook answered 500 Internal Server Error."
    assert (slack.enabled, slack.last_error, slack.last_error_at) == (True, row.last_error, first_cycle)

    next_cycle = first_cycle + timedelta(minutes=1)
    assert alerts_dispatch(now=next_cycle) == counts(sent=1)
    row = refreshed(row)
    assert (row.sent_successfully, row.sent_at, row.attempts, row.last_error) == (True, next_cycle, 2, "")
    assert len(http_server.requests) == 2


@pytest.mark.django_db
def test_it_retries_after_a_timeout(http_server, slack, settings):
    settings.AICMO_CAM_ALERT_TIMEOUT_SECONDS = 0.3
    http_server.reply(SLACK_PATH, Reply(200, "ok", delay=3), Reply(200, "ok"))
    (row,) = queue()
    assert alerts_dispatch() == counts(failed_transient=1)
    assert refreshed(row).last_error == "The Slack webhook did not answer within 0.3 s."
    assert alerts_dispatch() == counts(sent=1)
    assert refreshed(row).sent_successfully


@pytest.mark.django_db
def test_it_retries_a_failing_email_on_the_next_dispatch(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    smtp_server.answer_data("451 4.3.0 Try again later", "250 OK")
    (row,) = queue()
    assert alerts_dispatch() == counts(failed_transient=1)
    assert refreshed(row).last_error == "The mail server refused the alert: 451 4.3.0 Try again later"
    assert alerts_dispatch() == counts(sent=1)
    assert len(smtp_server.messages) == 1
    assert refreshed(row).attempts == 2


@pytest.mark.django_db
def test_it_waits_with_a_failing_channel_s_other_alerts_until_the_next_dispatch(http_server, slack, webhook):
    http_server.reply(SLACK_PATH, Reply(503))
    http_server.reply(HOOK_PATH, Reply(204))
    for n in range(3):
        queue(key=f"positive-reply:{n}")
    assert alerts_dispatch() == counts(sent=3, failed_transient=1)
    assert [request.path for request in http_server.requests].count(SLACK_PATH) == 1
    assert HumanAlertLog.objects.filter(channel=slack, attempts=0).count() == 2


@pytest.mark.django_db
def test_it_gives_up_on_a_transient_failure_once_the_alert_is_older_than_the_retry_window(http_server, slack):
    http_server.reply(SLACK_PATH, Reply(503, "down"))
    (row,) = queue()
    now = timezone.now()
    HumanAlertLog.objects.filter(pk=row.pk).update(created_at=now - ALERT_RETRY_WINDOW, attempts=40)

    assert alerts_dispatch(now=now) == counts(failed_transient=1, given_up=1)
    row, slack = refreshed(row), refreshed(slack)
    assert (row.sent_successfully, row.failed_at, row.sent_at) == (False, now, None)
    assert row.last_error == ("Gave up after 41 attempts over 24 hours. "
                              "Last error: The Slack webhook answered 503 Service Unavailable.")
    assert slack.enabled
    assert alerts_dispatch() == counts()


@pytest.mark.django_db
def test_it_sends_oldest_first_and_at_most_limit(http_server, slack):
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    start = timezone.now()
    for n in range(3):
        (row,) = queue(key=f"job-failed:{n}", alert_type=AlertType.JOB_FAILED, title=f"Job {n} failed")
        HumanAlertLog.objects.filter(pk=row.pk).update(created_at=start - timedelta(minutes=n))
    assert alerts_dispatch(limit=2) == counts(sent=2)
    assert [request.json()["text"] for request in http_server.requests] == ["Job 2 failed", "Job 1 failed"]
    assert alerts_dispatch(limit=2) == counts(sent=1)


@pytest.mark.django_db
def test_it_sends_an_alert_queued_in_two_cycles_once_per_target(http_server, slack, smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    for _cycle in range(2):
        queue(key="worker-stale:host-a:2025-01-31T09:00")
        alerts_dispatch()
    assert HumanAlertLog.objects.count() == 2
    assert len(http_server.requests) == 1
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db
def test_it_counts_a_transport_bug_as_a_transient_failure_and_goes_on(http_server, slack, monkeypatch):
    from cam.alerts.slack import SlackTransport

    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    AlertChannel.objects.filter(pk=slack.pk).update(alert_types=[AlertType.POSITIVE_REPLY])
    other = AlertChannelFactory(name="Quiet", kind=Kind.NONE, alert_types=[AlertType.JOB_FAILED])
    (first,) = queue(key="positive-reply:1")
    (later,) = queue(key="job-failed:1", alert_type=AlertType.JOB_FAILED)
    real_send = SlackTransport.send
    monkeypatch.setattr(SlackTransport, "send", lambda self, alert, channel: 1 / 0)

    assert alerts_dispatch() == counts(failed_transient=1, sent=1)
    assert refreshed(first).last_error == "ZeroDivisionError: division by zero"
    assert refreshed(later).sent_successfully and later.channel == other
    monkeypatch.setattr(SlackTransport, "send", real_send)
    assert alerts_dispatch() == counts(sent=1)


@pytest.mark.django_db(transaction=True)
def test_it_sends_each_alert_exactly_once_with_two_dispatchers_at_once(http_server, slack, webhook):
    http_server.reply(SLACK_PATH, Reply(200, "ok", delay=0.02))
    http_server.reply(HOOK_PATH, Reply(204, delay=0.02))
    for n in range(25):
        queue(key=f"positive-reply:{n}", title=f"Reply {n}")
    results, errors = run_at_once(alerts_dispatch, threads=2, timeout=120)

    assert errors == []
    assert sum(result["sent"] for result in results) == 50
    slack_titles = [request.json()["text"] for request in http_server.requests_to(SLACK_PATH)]
    hook_ids = [request.json()["id"] for request in http_server.requests_to(HOOK_PATH)]
    assert sorted(slack_titles) == sorted(f"Reply {n}" for n in range(25))
    assert len(hook_ids) == len(set(hook_ids)) == 25
    assert HumanAlertLog.objects.filter(sent_successfully=True, attempts=1).count() == 50


@pytest.mark.django_db
def test_it_fails_an_alert_for_a_channel_kind_no_transport_handles(http_server, slack):
    (row,) = queue()
    AlertChannel.objects.filter(pk=slack.pk).update(kind="pager")
    assert alerts_dispatch() == counts(failed_permanent=1, channels_disabled=1)
    assert refreshed(row).last_error == "No alert transport for channel kind 'pager'."
    assert not refreshed(slack).enabled
    assert http_server.requests == []


# --- one email per person ---------------------------------------------------------------------------


def emails_per_address(smtp_server) -> dict[str, int]:
    received: dict[str, int] = {}
    for message in smtp_server.messages:
        for address in message.rcpt_tos:
            received[address.lower()] = received.get(address.lower(), 0) + 1
    return received


@pytest.mark.django_db
def test_an_address_in_the_alert_emails_and_an_email_channel_gets_one_email(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["Sales@cam.example.com", "owner@cam.example.com"]
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com, anna@cam.example.com")

    rows = queue()
    assert alerts_dispatch() == counts(sent=2)

    assert emails_per_address(smtp_server) == {"sales@cam.example.com": 1, "owner@cam.example.com": 1,
                                               "anna@cam.example.com": 1}
    # The setting's list keeps the shared address: it still goes out when a channel is broken.
    assert [(row.channel, row.recipients) for row in rows] == [
        (channel, "anna@cam.example.com"), (None, "Sales@cam.example.com, owner@cam.example.com")]


@pytest.mark.django_db
def test_an_email_channel_with_nobody_of_its_own_gets_no_row(smtp_server, smtp_settings, slack, http_server):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["sales@cam.example.com"]
    AlertChannelFactory(kind=Kind.EMAIL, recipients="SALES@cam.example.com")
    http_server.reply(SLACK_PATH, Reply(200, "ok"))

    rows = queue()
    assert alerts_dispatch() == counts(sent=2)

    assert [row.channel for row in rows] == [slack, None]
    assert emails_per_address(smtp_server) == {"sales@cam.example.com": 1}
    assert len(http_server.requests) == 1  # other kinds are not people's addresses: untouched


@pytest.mark.django_db
def test_two_email_channels_sharing_an_address_send_it_once(smtp_server, smtp_settings):
    first = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com, anna@cam.example.com")
    second = AlertChannelFactory(kind=Kind.EMAIL, recipients="anna@cam.example.com, ops@cam.example.com")

    rows = queue()
    alerts_dispatch()

    assert [(row.channel, row.recipients) for row in rows] == [
        (first, "sales@cam.example.com, anna@cam.example.com"), (second, "ops@cam.example.com")]
    assert emails_per_address(smtp_server) == {"sales@cam.example.com": 1, "anna@cam.example.com": 1,
                                               "ops@cam.example.com": 1}


@pytest.mark.django_db
def test_a_channel_added_after_the_alert_was_queued_does_not_repeat_it_to_anyone(smtp_server, smtp_settings):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    queue()
    alerts_dispatch()
    added = AlertChannelFactory(kind=Kind.EMAIL, recipients="owner@cam.example.com, new@cam.example.com")

    rows = queue()  # the same alert again, as a cycle that re-raises it would
    alerts_dispatch()

    assert [(row.channel, row.recipients) for row in rows] == [
        (None, "owner@cam.example.com"), (added, "new@cam.example.com")]
    assert emails_per_address(smtp_server) == {"owner@cam.example.com": 1, "new@cam.example.com": 1}


@pytest.mark.django_db
def test_a_queued_email_goes_to_the_recipients_it_was_queued_with(smtp_server, smtp_settings):
    channel = AlertChannelFactory(kind=Kind.EMAIL, recipients="sales@cam.example.com")
    queue()
    AlertChannel.objects.filter(pk=channel.pk).update(recipients="someone-else@cam.example.com")

    alerts_dispatch()

    assert emails_per_address(smtp_server) == {"sales@cam.example.com": 1}


@pytest.mark.django_db
def test_a_warm_replys_alert_lands_on_its_conversation_on_the_reply_desk(smtp_server, smtp_settings, slack,
                                                                         http_server, admin_client):
    smtp_settings.AICMO_CAM_ALERT_EMAILS = ["owner@cam.example.com"]
    http_server.reply(SLACK_PATH, Reply(200, "ok"))
    lead = LeadFactory(first_name="Anna", status="IN_SEQUENCE")
    reply = InboundEmailFactory(lead=lead, category=InboundEmail.Category.POSITIVE, new_text="Call me on Tuesday.")
    reply_follow_up(inbound=reply, actor="system:classifier")

    assert alerts_dispatch() == counts(sent=2)

    thread = f"https://cam.example.com/admin/cam/reply/{reply.pk}/thread/"
    body = smtp_server.messages[0].parsed.get_content()
    assert f"Open it: {thread}" in body
    assert f"Open the conversation: {thread}" in body
    assert f"<{thread}|Open the conversation>" in http_server.requests[0].body.decode()
    # The link is the desk's thread of that reply, for staff who log in.
    page = admin_client.get(thread.removeprefix("https://cam.example.com"))
    assert page.status_code == 200
    assert "Call me on Tuesday." in page.content.decode()
