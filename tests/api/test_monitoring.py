"""GET metrics, health, worker and alerts."""

from __future__ import annotations

import socket
import socketserver
import threading
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from cam.api import monitoring
from cam.decisions import metrics_compute
from cam.jobs.schedules import schedules_install
from cam.models import HumanAlertLog
from tests import factories

pytestmark = pytest.mark.django_db

METRICS = reverse("cam-api:metrics")
HEALTH = reverse("cam-api:health")
WORKER = reverse("cam-api:worker-list")
ALERTS = reverse("cam-api:alert-list")


def alert_url(pk) -> str:
    return f"{ALERTS}{pk}/"


def checks(response) -> dict[str, str]:
    return {check["name"]: check["status"] for check in response.json()["checks"]}


# -- metrics ------------------------------------------------------------------------------------


def test_it_serves_the_dashboard_with_campaigns_and_mailboxes(api):
    schedules_install()
    campaign = factories.CampaignFactory(name="Alpha", status="DEGRADED", status_reason="Few positive replies")
    mailbox = factories.MailboxFactory(name="Sales box")
    lead = factories.LeadFactory(campaign=campaign)
    sent = factories.OutboundEmailFactory(lead=lead, mailbox=mailbox, status="SENT", sent_at=timezone.now())
    factories.InboundEmailFactory(mailbox=mailbox, outbound_email=sent, lead=lead, category="POSITIVE")
    factories.JobExecutionFactory(job="harvest", status="COMPLETED", campaign=campaign,
                                  finished_at=timezone.now())
    factories.WorkerHeartbeatFactory(worker_id="host-1")
    metrics_compute()

    response = api.get(METRICS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"timestamp", "health_status", "health_reasons", "scheduler_status", "job_metrics",
                         "recent_jobs", "worker", "campaigns", "mailboxes"}
    assert body["health_status"] == "healthy"
    assert body["recent_jobs"][0]["job"] == "harvest"
    assert body["recent_jobs"][0]["campaign"] == campaign.pk
    assert body["job_metrics"]["harvest"]["completed"] == 1
    assert body["worker"]["workers"][0]["worker_id"] == "host-1"
    [alpha] = body["campaigns"]
    assert {key: alpha[key] for key in ("id", "name", "status", "status_reason", "window_days", "daily_cap",
                                        "effective_daily_cap", "cap_note")} == {
        "id": campaign.pk, "name": "Alpha", "status": "DEGRADED", "status_reason": "Few positive replies",
        "window_days": 7, "daily_cap": 200, "effective_daily_cap": 100,
        "cap_note": "sending at half its caps (100 of 200 a day) until resumed or the rule clears"}
    assert alpha["all_time"] == {"sent": 1, "replies": 1, "replies_rate": 100.0, "positive": 1,
                                 "positive_rate": 100.0, "bounced_hard": 0, "bounced_hard_rate": 0.0,
                                 "complaints": 0, "complaints_rate": 0.0, "unsubscribes": 0,
                                 "unsubscribes_rate": 0.0}
    [box] = body["mailboxes"]
    assert (box["name"], box["is_active"], box["window"]["sent"]) == ("Sales box", True, 1)


def test_it_serves_the_dashboard_to_a_read_only_key_and_a_staff_session(read_api, admin_client):
    assert read_api.get(METRICS).status_code == 200
    assert admin_client.get(METRICS).json()["campaigns"] == []


def test_it_refuses_the_dashboard_without_credentials(anon_api):
    response = anon_api.get(METRICS)
    assert response.status_code == 401
    assert "campaigns" not in response.json()


# -- health -------------------------------------------------------------------------------------


def test_it_is_healthy_without_a_key_when_everything_answers(anon_api):
    factories.WorkerHeartbeatFactory(last_seen_at=timezone.now() - timedelta(seconds=30))

    response = anon_api.get(HEALTH)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["heartbeat_age_seconds"]) == ("healthy", 30)
    assert body["checks"] == [
        {"name": "database", "status": "ok", "message": "The database answers."},
        {"name": "broker", "status": "ok", "message": "The task queue is in the database, which answers."},
        {"name": "heartbeat", "status": "ok", "message": "The newest heartbeat is 30 s old."},
        {"name": "cache", "status": "ok", "message": "The cache answers."},
    ]


def test_it_is_healthy_before_any_worker_reported(anon_api):
    schedules_install()
    response = anon_api.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["checks"][2] == {"name": "heartbeat", "status": "ok",
                                            "message": "No worker has reported yet."}


def test_it_is_unavailable_when_no_worker_reported_and_the_worker_cycle_is_overdue(anon_api):
    schedules_install()
    Schedule.objects.filter(name="cam: worker cycle").update(next_run=timezone.now() - timedelta(hours=1))
    response = anon_api.get(HEALTH)
    assert response.status_code == 503
    assert checks(response) == {"database": "ok", "broker": "ok", "heartbeat": "failed", "cache": "ok"}


def test_it_is_unavailable_when_the_newest_heartbeat_is_stale_and_shows_nothing_personal(anon_api, settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    factories.WorkerHeartbeatFactory(worker_id="host-1", status="ERROR", last_seen_at=timezone.now()
                                     - timedelta(minutes=4), last_error="send: 550 jane.doe@acme.test rejected")

    response = anon_api.get(HEALTH)

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["heartbeat_age_seconds"]) == ("unhealthy", 240)
    assert body["checks"][2] == {"name": "heartbeat", "status": "failed", "message": (
        "The newest heartbeat is 240 s old (stale after 180 s); is a worker running?")}
    assert "jane.doe" not in response.content.decode() and "host-1" not in response.content.decode()


def test_it_reports_a_disabled_worker_as_healthy(anon_api, settings):
    settings.AICMO_CAM_WORKER_ENABLED = False
    factories.WorkerHeartbeatFactory(last_seen_at=timezone.now() - timedelta(days=2))
    response = anon_api.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["checks"][2]["message"] == "The worker is disabled; no heartbeat is expected."


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_is_unavailable_when_redis_does_not_answer(anon_api, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    factories.WorkerHeartbeatFactory()
    response = anon_api.get(HEALTH)
    assert response.status_code == 503
    assert response.json()["checks"][1] == {"name": "broker", "status": "failed", "message": "Redis did not answer."}
    assert checks(response) == {"database": "ok", "broker": "failed", "heartbeat": "ok", "cache": "ok"}


class FakeRedis(socketserver.StreamRequestHandler):
    """Just enough of the Redis protocol (RESP3) for a client's handshake and PING."""

    REPLIES = {b"PING": b"+PONG\r\n", b"HELLO": b"%1\r\n+proto\r\n:3\r\n"}

    def handle(self):
        while line := self.rfile.readline():
            if not line.startswith(b"*"):
                continue
            parts = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                parts.append(self.rfile.read(size + 2)[:-2])
            self.wfile.write(self.REPLIES.get(parts[0].upper(), b"+OK\r\n"))


@pytest.fixture
def redis_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeRedis)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_it_is_healthy_when_redis_answers(anon_api, settings, redis_server):
    settings.REDIS_URL = f"redis://127.0.0.1:{redis_server.server_address[1]}/0"
    factories.WorkerHeartbeatFactory()
    response = anon_api.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["checks"][1] == {"name": "broker", "status": "ok", "message": "Redis answers."}


def test_it_is_unavailable_when_the_database_does_not_answer(anon_api, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(connection, "cursor", unreachable)
    response = anon_api.get(HEALTH)
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.json()["checks"] == [
        {"name": "database", "status": "failed", "message": "The database did not answer."},
        {"name": "broker", "status": "failed", "message": "The task queue is in the database, which did not answer."},
        {"name": "heartbeat", "status": "failed", "message": "The heartbeats could not be read."},
        {"name": "cache", "status": "failed", "message": "The cache did not answer."},
    ]


@pytest.mark.parametrize("cache", [
    {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "no_such_cache_table"},
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:{port}/0"},
], ids=["missing-cache-table", "redis-down"])
def test_it_is_unavailable_when_the_cache_does_not_answer(anon_api, settings, cache):
    # The throttles count in the cache: without it every authenticated call fails, so health must say so.
    settings.CACHES = {"default": {**cache, "LOCATION": cache["LOCATION"].format(port=closed_port())}}
    factories.WorkerHeartbeatFactory()

    response = anon_api.get(HEALTH)

    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert checks(response) == {"database": "ok", "broker": "ok", "heartbeat": "ok", "cache": "failed"}
    assert response.json()["checks"][3] == {"name": "cache", "status": "failed",
                                            "message": "The cache did not answer."}


def test_it_is_unavailable_when_the_cache_loses_what_is_written(anon_api, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    factories.WorkerHeartbeatFactory()
    response = anon_api.get(HEALTH)
    assert response.status_code == 503
    assert response.json()["checks"][3] == {"name": "cache", "status": "failed", "message": (
        "The cache did not return what was written to it.")}


def test_a_flood_of_health_calls_writes_the_cache_at_most_once_per_interval(anon_api, monkeypatch):
    # The endpoint is public: each call writing a cache key (a row in the database cache) would let
    # anyone keep the cache busy.
    factories.WorkerHeartbeatFactory()
    backend = type(caches["default"])
    writes = []
    real_set = backend.set
    monkeypatch.setattr(backend, "set", lambda self, *args, **kwargs: writes.append(args[0]) or real_set(
        self, *args, **kwargs))
    clock = [1000.0]
    monkeypatch.setattr(monitoring.cache_probe, "clock", lambda: clock[0])

    for _ in range(20):
        assert checks(anon_api.get(HEALTH))["cache"] == "ok"
        clock[0] += 0.2
    assert writes == ["cam:health:probe"]

    clock[0] += monitoring.CACHE_PROBE_INTERVAL_SECONDS
    assert checks(anon_api.get(HEALTH))["cache"] == "ok"
    assert len(writes) == 2


def test_a_failed_cache_probe_is_reported_until_the_next_probe(anon_api, settings, monkeypatch):
    factories.WorkerHeartbeatFactory()
    clock = [1000.0]
    monkeypatch.setattr(monitoring.cache_probe, "clock", lambda: clock[0])
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert anon_api.get(HEALTH).status_code == 503
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert anon_api.get(HEALTH).status_code == 503  # the same answer within the interval
    clock[0] += monitoring.CACHE_PROBE_INTERVAL_SECONDS
    assert anon_api.get(HEALTH).status_code == 200


def test_it_ignores_a_bad_key_and_is_never_throttled(anon_api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "cam_read": "1/min"}}
    anon_api.credentials(HTTP_AUTHORIZATION="Api-Key not-a-key")
    assert [anon_api.get(HEALTH).status_code for _ in range(3)] == [200, 200, 200]


# -- worker -------------------------------------------------------------------------------------


def test_it_lists_the_heartbeats_most_recent_first_with_their_staleness(read_api, settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    factories.WorkerHeartbeatFactory(worker_id="old", last_seen_at=timezone.now() - timedelta(minutes=10))
    factories.WorkerHeartbeatFactory(worker_id="new", status="RUNNING", current_step="send", cycles_completed=4)

    response = read_api.get(WORKER)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [(w["worker_id"], w["stale"], w["stale_after_seconds"]) for w in body["results"]] == [
        ("new", False, 180), ("old", True, 180)]
    assert (body["results"][0]["status"], body["results"][0]["current_step"],
            body["results"][0]["cycles_completed"]) == ("RUNNING", "send", 4)


def test_it_pages_the_heartbeats(api):
    factories.WorkerHeartbeatFactory.create_batch(3)
    body = api.get(WORKER, {"page_size": 2, "page": 2}).json()
    assert (body["count"], len(body["results"]), body["next"]) == (3, 1, None)
    assert api.get(WORKER, {"page": 9}).status_code == 404


def test_it_refuses_an_unknown_parameter_on_the_heartbeats(api):
    response = api.get(WORKER, {"status": "IDLE"})
    assert (response.status_code, list(response.json())) == (400, ["status"])


def test_it_refuses_the_heartbeats_without_credentials(anon_api):
    assert anon_api.get(WORKER).status_code == 401


@pytest.mark.parametrize("rows", [1, 3])
def test_it_lists_the_heartbeats_in_a_fixed_number_of_queries(api, django_assert_num_queries, rows):
    factories.WorkerHeartbeatFactory.create_batch(rows)
    api.get(WORKER)  # the throttle's first use of the cache table costs queries of its own
    # One of them the address's failed-key counter (cam.api.key_guesses).
    with django_assert_num_queries(8):
        assert len(api.get(WORKER).json()["results"]) == rows


# -- alerts -------------------------------------------------------------------------------------


@pytest.fixture
def alerts():
    campaign = factories.CampaignFactory()
    channel = factories.AlertChannelFactory(name="Sales inbox")
    now = timezone.now()
    sent = factories.HumanAlertLogFactory(title="Interested: Anna", campaign=campaign, channel=channel,
                                          sent_successfully=True, sent_at=now)
    failed = factories.HumanAlertLogFactory(alert_type="JOB_FAILED", title="harvest failed", failed_at=now,
                                            last_error="no recipients")
    pending = factories.HumanAlertLogFactory(alert_type="WORKER_STALE", title="Worker stale", campaign=campaign)
    HumanAlertLog.objects.filter(pk=failed.pk).update(created_at=now - timedelta(days=3))
    return {"campaign": campaign, "sent": sent, "failed": failed, "pending": pending}


def titles(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["title"] for row in response.json()["results"]]


def test_it_lists_the_alerts_newest_first(read_api, alerts):
    response = read_api.get(ALERTS)
    assert titles(response) == ["Worker stale", "Interested: Anna", "harvest failed"]
    row = response.json()["results"][1]
    assert {key: row[key] for key in ("alert_type", "status", "channel", "channel_name", "campaign")} == {
        "alert_type": "POSITIVE_REPLY", "status": "sent", "channel": alerts["sent"].channel_id,
        "channel_name": "Sales inbox", "campaign": alerts["campaign"].pk}
    assert response.json()["results"][0]["channel_name"] is None


@pytest.mark.parametrize(("params", "expected"), [
    ({"status": "sent"}, ["Interested: Anna"]),
    ({"status": "failed"}, ["harvest failed"]),
    ({"status": "pending"}, ["Worker stale"]),
    ({"type": "JOB_FAILED"}, ["harvest failed"]),
    ({"created_before": "past"}, ["harvest failed"]),
    ({"created_after": "past"}, ["Worker stale", "Interested: Anna"]),
])
def test_it_filters_the_alerts(api, alerts, params, expected):
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    params = {key: yesterday if value == "past" else value for key, value in params.items()}
    assert titles(api.get(ALERTS, params)) == expected


def test_it_filters_the_alerts_by_campaign(api, alerts):
    assert titles(api.get(ALERTS, {"campaign": alerts["campaign"].pk})) == ["Worker stale", "Interested: Anna"]


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"),
    ({"type": "positive"}, "type"),
    ({"campaign": "abc"}, "campaign"),
    ({"campaign": "0"}, "campaign"),
    ({"campaign": str(2**70)}, "campaign"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2024-13-45"}, "created_before"),
    ({"statuss": "sent"}, "statuss"),
])
def test_it_refuses_bad_alert_filters_by_name(api, params, field):
    response = api.get(ALERTS, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_it_reads_one_alert(api, alerts):
    response = api.get(alert_url(alerts["failed"].pk))
    assert response.status_code == 200
    assert {key: response.json()[key] for key in ("title", "status", "last_error", "failed_at")} == {
        "title": "harvest failed", "status": "failed", "last_error": "no recipients",
        "failed_at": alerts["failed"].failed_at.isoformat().replace("+00:00", "Z")}


@pytest.mark.parametrize("pk", ["999999", str(2**70), "abc"])
def test_it_answers_404_for_an_unknown_alert(api, pk):
    assert api.get(alert_url(pk)).status_code == 404


def test_it_refuses_the_alerts_without_credentials(anon_api, alerts):
    assert anon_api.get(ALERTS).status_code == 401
    assert anon_api.get(alert_url(alerts["sent"].pk)).status_code == 401


def test_it_offers_no_writes_on_alerts(api, read_api, alerts):
    assert api.delete(alert_url(alerts["sent"].pk)).status_code == 405
    assert read_api.delete(alert_url(alerts["sent"].pk)).status_code == 403


@pytest.mark.parametrize("rows", [1, 3])
def test_it_lists_the_alerts_in_a_fixed_number_of_queries(api, django_assert_num_queries, rows):
    channel = factories.AlertChannelFactory()
    factories.HumanAlertLogFactory.create_batch(rows, channel=channel, campaign=factories.CampaignFactory())
    api.get(ALERTS)
    with django_assert_num_queries(8):
        assert len(api.get(ALERTS).json()["results"]) == rows
