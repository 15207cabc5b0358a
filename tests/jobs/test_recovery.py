"""After a worker died: the watchdog fails its runs, marks its heartbeat LOST, releases its leases and
recovers its emails; a cycle that failed while the database was away is recorded once it answers."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from cam.jobs import cycle
from cam.jobs.cycle import worker_cycle_run
from cam.jobs.heartbeat import stale_after
from cam.jobs.recovery import watchdog_run, workers_reconcile
from cam.jobs.runner import WORKER_DIED
from cam.models import JobExecution, Lease, WorkerHeartbeat
from tests.factories import JobExecutionFactory, LeaseFactory, WorkerHeartbeatFactory

pytestmark = pytest.mark.django_db

RUNNING = JobExecution.Status.RUNNING


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def test_it_fails_the_runs_whose_worker_no_longer_holds_a_lease():
    LeaseFactory(name="job:harvest:global", holder="alive:1")
    alive = JobExecutionFactory(status=RUNNING, holder="alive:1")
    dead = JobExecutionFactory(status=RUNNING, holder="killed:1", started_at=ago(seconds=5))
    expired = JobExecutionFactory(status=RUNNING, holder="slow:1")
    LeaseFactory(name="job:score:global", holder="slow:1", expires_at=ago(seconds=1))
    unnamed_old = JobExecutionFactory(status=RUNNING, holder="", started_at=ago(days=1))
    unnamed_recent = JobExecutionFactory(status=RUNNING, holder="", started_at=ago(seconds=30))

    assert workers_reconcile()["runs_failed"] == 3
    statuses = dict(JobExecution.objects.values_list("pk", "status"))
    assert statuses[alive.pk] == statuses[unnamed_recent.pk] == RUNNING
    for run in (dead, expired, unnamed_old):
        run.refresh_from_db()
        assert (run.status, run.error) == ("FAILED", WORKER_DIED)
        assert run.finished_at is not None


def test_it_marks_workers_not_seen_for_three_intervals_lost(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    gone = WorkerHeartbeatFactory(status="RUNNING", current_step="poll", last_seen_at=ago(minutes=4))
    stopped = WorkerHeartbeatFactory(status="STOPPED", last_seen_at=ago(minutes=30))
    fresh = WorkerHeartbeatFactory(status="RUNNING", last_seen_at=ago(minutes=1))

    assert workers_reconcile()["workers_lost"] == 1
    assert [(h.worker_id, h.status, h.current_step) for h in WorkerHeartbeat.objects.order_by("pk")] == [
        (gone.worker_id, "LOST", ""), (stopped.worker_id, "STOPPED", ""), (fresh.worker_id, "RUNNING", "")]


@pytest.mark.parametrize(("scheduled", "stale_seconds"), [(True, 180), (False, 15)])
def test_the_watchdog_counts_the_intervals_cycles_really_come_at(settings, scheduled, stale_seconds):
    # 5 s between cycles: cam_worker keeps it, but q2's schedule fires once a minute. A worker last seen
    # at the previous scheduled cycle is alive under the schedule and silent for cam_worker.
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 5
    settings.AICMO_CAM_WORKER_ENABLED = scheduled
    assert stale_after() == timedelta(seconds=stale_seconds)
    WorkerHeartbeatFactory(status="IDLE", last_seen_at=ago(seconds=50))

    counts = watchdog_run()
    assert (counts["workers_lost"], counts["stale"]) == ((0, 0) if scheduled else (1, 1))


def test_it_releases_expired_leases_and_keeps_live_ones():
    LeaseFactory(name="send:mailbox:1", holder="killed:1", expires_at=ago(seconds=1))
    LeaseFactory(name="send:mailbox:2", holder="alive:1")
    assert workers_reconcile()["leases_released"] == 1
    assert list(Lease.objects.values_list("name", flat=True)) == ["send:mailbox:2"]


def test_the_watchdog_job_reconciles_and_changes_nothing_when_all_is_well():
    from cam.jobs.runner import run_job

    result = run_job("watchdog")
    assert result.status == "COMPLETED"
    assert not any(result.counts.values())


def test_cam_worker_runs_the_watchdog_after_its_cycle(settings, capsys):
    settings.AICMO_CAM_WORKER_ID = "solo"
    gone = WorkerHeartbeatFactory(worker_id="killed", status="RUNNING", last_seen_at=ago(hours=1))
    LeaseFactory(name="poll:mailbox:7", holder="killed:1", expires_at=ago(minutes=50))
    dead_run = JobExecutionFactory(status=RUNNING, holder="killed:2")

    call_command("cam_worker", "--once")

    assert "watchdog: " in capsys.readouterr().out
    gone.refresh_from_db()
    dead_run.refresh_from_db()
    assert (gone.status, dead_run.status) == ("LOST", "FAILED")
    assert not Lease.objects.filter(name="poll:mailbox:7").exists()


def test_a_cycle_the_database_refused_is_recorded_as_failed_once_it_answers(monkeypatch):
    real_run_job = cycle.run_job

    def refused(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    real_record = cycle.job_record_unrun
    monkeypatch.setattr(cycle, "run_job", refused)
    monkeypatch.setattr(cycle, "job_record_unrun", refused)
    for _ in range(3):
        assert worker_cycle_run(worker_id="w-outage").status == "failed"
    assert not JobExecution.objects.exists()  # nothing could be written then

    monkeypatch.setattr(cycle, "run_job", real_run_job)
    monkeypatch.setattr(cycle, "job_record_unrun", real_record)
    assert worker_cycle_run(worker_id="w-outage").status == "completed"
    failed = JobExecution.objects.get(status="FAILED")
    assert failed.job == "worker_cycle" and failed.execution_id.startswith("worker_cycle:global:")
    assert failed.error.startswith("Database connection lost: OperationalError: connection to server")
    assert "3 cycles could not run between" in failed.error
    heartbeat = WorkerHeartbeat.objects.get(worker_id="w-outage")
    assert "3 cycles could not run" in heartbeat.last_error
    assert worker_cycle_run(worker_id="w-outage").status == "completed"
    assert JobExecution.objects.filter(status="FAILED").count() == 1  # recorded once


def test_a_cycle_whose_outcome_could_not_be_saved_is_completed_from_memory(monkeypatch):
    def lost(options):
        raise InterfaceError("connection already closed")

    monkeypatch.setitem(cycle.STEPS, "poll", lost)
    real_save = JobExecution.save

    def save_fails_while_the_database_is_away(self, *args, **kwargs):
        if self.status == "FAILED":
            raise OperationalError("server closed the connection unexpectedly")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(JobExecution, "save", save_fails_while_the_database_is_away)
    assert worker_cycle_run(worker_id="w-lost").status == "failed"
    run = JobExecution.objects.get(job="worker_cycle")
    assert run.status == RUNNING  # what the database knows while it is away

    monkeypatch.setattr(JobExecution, "save", real_save)
    monkeypatch.undo()
    worker_cycle_run(worker_id="w-lost")
    run.refresh_from_db()
    assert run.status == "FAILED"
    assert run.error.startswith("ConnectionLost: in step poll: InterfaceError: connection already closed")
    assert "1 cycle could not run" in run.error
    assert run.finished_at is not None
    assert not Lease.objects.filter(holder=run.holder).exists()


def test_a_skipped_cycle_whose_heartbeat_cannot_be_written_does_not_raise(monkeypatch):
    # Another worker holds the cycle; the database is cut just before this worker says it was seen.
    LeaseFactory(name=cycle.CYCLE_LEASE, holder="worker-other")

    def cut(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(cycle, "heartbeat_seen", cut)

    assert worker_cycle_run(worker_id="w-cut").status == "skipped"
