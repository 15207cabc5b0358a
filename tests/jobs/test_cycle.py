"""The worker cycle: every step in order with its counts, isolation, one holder at a time, the heartbeat,
and the watchdog."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db.utils import InterfaceError
from django.utils import timezone

from cam.jobs import cycle
from cam.jobs.cycle import CYCLE_LEASE, STEPS, worker_cycle_run
from cam.jobs.heartbeat import watchdog_check
from cam.locks import lease_acquire
from cam.models import HumanAlertLog, JobExecution, Lead, Lease, OutboundEmail, WorkerHeartbeat
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, SequenceStepFactory, WorkerHeartbeatFactory

pytestmark = pytest.mark.django_db


def due_lead() -> Lead:
    mailbox = MailboxFactory(daily_cap=100, min_gap_seconds=0)  # console provider, no IMAP host
    campaign = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=campaign, position=1)
    return LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE,
                       next_send_at=timezone.now() - timedelta(minutes=1))


def test_it_runs_every_step_in_order_with_counts():
    lead = due_lead()
    result = worker_cycle_run(worker_id="w1")

    assert (result.status, result.errors) == ("completed", {})
    assert list(result.steps) == ["send", "poll", "replies", "no_reply", "metrics", "rules", "alerts"]
    assert result.steps["send"]["sent"] == 1
    assert result.steps["poll"]["mailboxes"] == 0
    assert OutboundEmail.objects.get(lead=lead).status == OutboundEmail.Status.SENT
    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert (execution.job, execution.status, execution.trigger) == ("worker_cycle", "COMPLETED", "worker")
    assert execution.counts["steps"]["send"]["sent"] == 1
    assert not Lease.objects.filter(name=CYCLE_LEASE).exists()  # released after the cycle


def test_it_records_a_failing_step_and_still_runs_the_others(monkeypatch):
    due_lead()

    def broken(options):
        raise RuntimeError("IMAP is on fire")

    monkeypatch.setitem(cycle.STEPS, "poll", broken)
    result = worker_cycle_run(worker_id="w1")

    assert result.status == "completed"
    assert result.errors == {"poll": "RuntimeError: IMAP is on fire"}
    assert list(result.steps) == ["send", "replies", "no_reply", "metrics", "rules", "alerts"]
    assert result.steps["send"]["sent"] == 1
    heartbeat = WorkerHeartbeat.objects.get(worker_id="w1")
    assert (heartbeat.status, heartbeat.last_error) == ("ERROR", "poll: RuntimeError: IMAP is on fire")
    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert execution.error == "poll: RuntimeError: IMAP is on fire"
    assert "IMAP is on fire" in execution.traceback and "Traceback" in execution.traceback
    assert execution.counts["errors"] == {"poll": "RuntimeError: IMAP is on fire"}


def test_it_skips_a_cycle_while_another_worker_holds_the_lease():
    assert lease_acquire(name=CYCLE_LEASE, holder="other-host:1")
    result = worker_cycle_run(worker_id="w2")

    assert result.status == "skipped"
    assert result.reason == f"Already running: another run of worker_cycle holds the lease {CYCLE_LEASE}."
    assert JobExecution.objects.get(execution_id=result.execution_id).status == "SKIPPED"
    assert WorkerHeartbeat.objects.get(worker_id="w2").cycles_completed == 0
    assert Lease.objects.get(name=CYCLE_LEASE).holder == "other-host:1"


def test_it_takes_over_the_lease_of_a_holder_that_died():
    lease_acquire(name=CYCLE_LEASE, holder="dead-host:1")
    Lease.objects.filter(name=CYCLE_LEASE).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = worker_cycle_run(worker_id="w3")

    assert result.status == "completed"
    assert WorkerHeartbeat.objects.get(worker_id="w3").cycles_completed == 1


def test_it_renews_its_lease_between_steps_so_a_live_cycle_is_not_taken_over(monkeypatch, settings):
    settings.AICMO_CAM_LOCK_TTL_SECONDS = 60
    seen = []

    def watching(options):
        lease = Lease.objects.get(name=CYCLE_LEASE)
        seen.append(lease.expires_at)
        # Pretend this step ran for most of the TTL: only a renewal keeps the lease alive.
        Lease.objects.filter(name=CYCLE_LEASE).update(expires_at=timezone.now() + timedelta(seconds=1))
        assert not lease_acquire(name=CYCLE_LEASE, holder="intruder")
        return {}

    monkeypatch.setitem(cycle.STEPS, "poll", watching)
    monkeypatch.setitem(cycle.STEPS, "no_reply", watching)
    result = worker_cycle_run(worker_id="w4")

    assert (result.status, result.errors) == ("completed", {})
    assert len(seen) == 2
    assert seen[1] > timezone.now() + timedelta(seconds=50)  # renewed after the step that shortened it


def test_it_ends_the_cycle_when_the_database_connection_is_lost(monkeypatch):
    ran = []

    def lost(options):
        raise InterfaceError("connection already closed")

    monkeypatch.setitem(cycle.STEPS, "poll", lost)
    monkeypatch.setitem(cycle.STEPS, "replies", lambda options: ran.append("replies") or {})
    result = worker_cycle_run(worker_id="w5")

    assert result.status == "failed"
    assert "connection already closed" in result.reason
    assert ran == []
    assert JobExecution.objects.get(execution_id=result.execution_id).status == "FAILED"
    assert WorkerHeartbeat.objects.get(worker_id="w5").status == "ERROR"
    # The next cycle runs normally.
    monkeypatch.setitem(cycle.STEPS, "poll", lambda options: {})
    assert worker_cycle_run(worker_id="w5").status == "completed"
    assert ran == ["replies"]


def test_it_keeps_the_heartbeat_of_a_cycle():
    started = timezone.now()
    worker_cycle_run(worker_id="w6")
    worker_cycle_run(worker_id="w6")

    heartbeat = WorkerHeartbeat.objects.get(worker_id="w6")
    assert (heartbeat.status, heartbeat.current_step, heartbeat.cycles_completed) == ("IDLE", "", 2)
    assert started <= heartbeat.last_cycle_started_at <= heartbeat.last_cycle_finished_at <= heartbeat.last_seen_at
    assert heartbeat.hostname and heartbeat.pid
    assert heartbeat.last_error == ""


def test_it_shows_the_running_step_on_the_heartbeat(monkeypatch):
    seen = []
    monkeypatch.setitem(cycle.STEPS, "no_reply", lambda options: seen.append(
        WorkerHeartbeat.objects.values_list("status", "current_step").get(worker_id="w7")) or {})
    worker_cycle_run(worker_id="w7")
    assert seen == [("RUNNING", "no_reply")]


def test_it_stops_after_the_current_step_when_asked(monkeypatch):
    import threading

    stop = threading.Event()
    monkeypatch.setitem(cycle.STEPS, "poll", lambda options: stop.set() or {"mailboxes": 0})
    result = worker_cycle_run(worker_id="w8", stop=stop)
    assert list(result.steps) == ["send", "poll"]
    assert result.reason == "stopped before replies"


def stale_heartbeat(minutes: int = 10):
    return WorkerHeartbeatFactory(worker_id="gone", last_seen_at=timezone.now() - timedelta(minutes=minutes))


def test_it_alerts_once_per_outage_when_no_worker_was_seen_for_three_intervals(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    settings.AICMO_CAM_ALERT_EMAILS = ["ops@cam.test"]
    stale_heartbeat(minutes=4)

    assert watchdog_check() == {"stale": 1, "alerts_queued": 1}
    assert watchdog_check(now=timezone.now() + timedelta(minutes=5)) == {"stale": 1, "alerts_queued": 0}
    (alert,) = HumanAlertLog.objects.all()
    assert (alert.alert_type, alert.recipients) == ("WORKER_STALE", "ops@cam.test")
    assert alert.title.startswith("No CAM worker seen since")


def test_it_alerts_again_for_a_new_outage(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    heartbeat = stale_heartbeat(minutes=10)
    watchdog_check()
    heartbeat.last_seen_at = timezone.now() - timedelta(minutes=4)  # it came back, then went silent again
    heartbeat.save()
    assert watchdog_check()["alerts_queued"] == 1
    assert HumanAlertLog.objects.filter(alert_type="WORKER_STALE").count() == 2


def test_it_does_not_alert_while_a_worker_is_fresh_or_before_any_reported(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    assert watchdog_check() == {"stale": 0, "alerts_queued": 0}
    stale_heartbeat(minutes=30)
    WorkerHeartbeatFactory(worker_id="alive", last_seen_at=timezone.now() - timedelta(minutes=2))
    assert watchdog_check() == {"stale": 0, "alerts_queued": 0}
    assert not HumanAlertLog.objects.exists()


def test_it_runs_the_watchdog_as_a_job(settings):
    from cam.jobs.runner import run_job

    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    heartbeat = stale_heartbeat()
    result = run_job("watchdog")
    assert (result.status, result.counts["stale"], result.counts["alerts_queued"]) == ("COMPLETED", 1, 1)
    assert result.counts["workers_lost"] == 1
    heartbeat.refresh_from_db()
    assert heartbeat.status == "LOST"


def test_it_runs_the_cycle_from_its_schedule_and_fans_sending_out(settings, django_capture_on_commit_callbacks):
    from cam.jobs.tasks import run_scheduled_job

    settings.AICMO_CAM_WORKER_ID = "cluster-1"
    lead = due_lead()
    with django_capture_on_commit_callbacks() as queued:
        summary = run_scheduled_job(job="worker_cycle", every_seconds=60)

    assert summary["status"] == "COMPLETED"
    assert summary["counts"]["steps"]["send"]["queued"] == 1  # one send task for the cluster, nothing sent here
    assert len(queued) == 1
    assert OutboundEmail.objects.get(lead=lead).status != OutboundEmail.Status.SENT
    assert JobExecution.objects.get(job="worker_cycle").trigger == "schedule"
    assert WorkerHeartbeat.objects.get(worker_id="cluster-1").cycles_completed == 1


def test_the_worker_docs_list_every_step_of_the_cycle_in_order():
    # docs/worker.md's table is what operators read to know what a cycle does; it must not fall behind.
    table = (Path(settings.BASE_DIR) / "docs" / "worker.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert documented == list(STEPS)


def test_it_says_where_it_is_and_keeps_its_lease_in_one_write_per_step(monkeypatch):
    """The heartbeat's writes and the lease's renewals of a cycle whose steps do nothing: one write at the
    start (naming the first step), one per later step (renewing the lease with it: one statement on
    PostgreSQL, two on SQLite), one at the end."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for name in STEPS:
        monkeypatch.setitem(cycle.STEPS, name, lambda options: {})
    worker_cycle_run(worker_id="w9")  # the heartbeat's row exists from now on
    with CaptureQueriesContext(connection) as captured:
        assert worker_cycle_run(worker_id="w9").status == "completed"
    writes = [query["sql"] for query in captured.captured_queries
              if "cam_worker_heartbeats" in query["sql"] or ("cam_lease" in query["sql"] and "expires_at\" =" in
                                                            query["sql"] and "acquired_at" not in query["sql"])]
    later_steps = len(STEPS) - 1
    assert len(writes) == 1 + later_steps * (1 if connection.vendor == "postgresql" else 2) + 1


def test_it_ends_the_cycle_when_its_lease_was_taken_over(monkeypatch):
    def taken_over(options):
        Lease.objects.filter(name=CYCLE_LEASE).update(holder="intruder")
        return {}

    ran = []
    monkeypatch.setitem(cycle.STEPS, "poll", taken_over)
    monkeypatch.setitem(cycle.STEPS, "replies", lambda options: ran.append("replies") or {})
    result = worker_cycle_run(worker_id="w10")

    assert list(result.steps) == ["send", "poll"] and ran == []
    assert result.errors == {"lease": f"lease {CYCLE_LEASE} lost before replies: another worker took it over"}
    assert Lease.objects.get(name=CYCLE_LEASE).holder == "intruder"  # not released by the one that lost it
