"""What the watchdog puts right after a worker died: its runs, its heartbeat, its leases and its emails.

A worker killed mid-run (``kill -9``, a lost host, an out-of-memory kill) leaves its traces behind:
a ``RUNNING`` job execution, a heartbeat that says ``RUNNING``, leases it never released, emails it
had claimed. Its leases are the proof of life: every holder renews its lease while it works, so a
lease past its expiry means its holder is gone. From that the watchdog (the cluster's schedule, or
``cam_worker`` after every cycle) reconciles, in a fixed handful of statements:

- an execution still ``RUNNING`` whose holder holds no live lease → ``FAILED``, "the worker died";
- a heartbeat not seen for ``STALE_AFTER_INTERVALS`` intervals that never said it stopped → ``LOST``;
- expired leases are deleted (a holder that comes back to renew one finds it gone and stops);
- emails claimed by a dead sender go back to the queue, the one in flight to ``UNKNOWN``/``RETRY``
  (``outbound_recover_stuck``).

It also rolls up each closed hour of job runs for the dashboard (``cam.jobs.run_hours``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from cam.jobs.heartbeat import stale_after, watchdog_check
from cam.jobs.run_hours import job_run_hours_roll_up
from cam.jobs.runner import WORKER_DIED
from cam.models import JobExecution, Lease, WorkerHeartbeat
from cam.outreach.sending import outbound_recover_stuck

# Heartbeats of workers that were alive when last seen; STOPPED and LOST ones are already final.
ALIVE = (WorkerHeartbeat.Status.STARTING, WorkerHeartbeat.Status.RUNNING, WorkerHeartbeat.Status.IDLE,
         WorkerHeartbeat.Status.ERROR)


def workers_reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Fail the runs of dead workers, mark their heartbeats LOST, delete expired leases and recover
    their emails. Returns how many of each: ``runs_failed``, ``workers_lost``, ``leases_released``
    and ``outbound_recover_stuck``'s counts."""
    now = now or timezone.now()
    live = Lease.objects.filter(expires_at__gt=now).values("holder")
    # Runs recorded before executions named their holder: dead once older than any run may take.
    unnamed_cutoff = now - timedelta(seconds=settings.Q_TIMEOUT_SECONDS + settings.AICMO_CAM_LOCK_TTL_SECONDS)
    died = JobExecution.objects.filter(status=JobExecution.Status.RUNNING).filter(
        (Q(holder__gt="") & ~Q(holder__in=live)) | Q(holder="", started_at__lt=unnamed_cutoff))
    runs_failed = died.update(status=JobExecution.Status.FAILED, error=WORKER_DIED, finished_at=now)
    workers_lost = WorkerHeartbeat.objects.filter(status__in=ALIVE, last_seen_at__lt=now - stale_after()).update(
        status=WorkerHeartbeat.Status.LOST, current_step="")
    leases_released, _ = Lease.objects.filter(expires_at__lte=now).delete()
    return {"runs_failed": runs_failed, "workers_lost": workers_lost, "leases_released": leases_released,
            **outbound_recover_stuck(now=now)}


def watchdog_run(*, now: datetime | None = None) -> dict[str, Any]:
    """The watchdog: reconcile what dead workers left, then alert once per outage when no worker at
    all has been seen for three intervals (``watchdog_check``), and roll up the job runs of any hour that
    closed since (``job_run_hours_roll_up``: the dashboard's week)."""
    now = now or timezone.now()
    return {**workers_reconcile(now=now), **watchdog_check(now=now), **job_run_hours_roll_up(now=now)}
