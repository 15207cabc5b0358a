"""What each worker says about itself (``WorkerHeartbeat``), and the watchdog that notices silence.

A worker writes its row a few times per cycle, each write one statement: at the start of a cycle (naming
its first step), before each later step (with the cycle's lease renewed in the same statement on
PostgreSQL), at the end, and when it stops. The watchdog reads only the newest ``last_seen_at``
across all workers: the cycle is one job shared by every worker, so one live worker is enough.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Max
from django.utils import timezone

from cam.alerts.service import alert_queue
from cam.jobs.slots import worker_interval_seconds
from cam.locks import lease_renew
from cam.models import HumanAlertLog, Lease, WorkerHeartbeat

Status = WorkerHeartbeat.Status

# A worker that has not been seen for this many intervals is considered gone.
STALE_AFTER_INTERVALS = 3


def stale_after() -> timedelta:
    """Three of the intervals cycles really come at (``worker_interval_seconds``)."""
    return timedelta(seconds=STALE_AFTER_INTERVALS * worker_interval_seconds())


def heartbeat_cycle_started(*, worker_id: str, step: str = "", now: datetime | None = None) -> None:
    """The worker begins a cycle with ``step``: RUNNING, with where it runs. One statement once the row
    exists (a worker's first cycle creates it)."""
    now = now or timezone.now()
    fields = {"status": Status.RUNNING, "current_step": step, "last_cycle_started_at": now, "last_seen_at": now,
              "hostname": socket.gethostname()[:255], "pid": os.getpid()}
    if not WorkerHeartbeat.objects.filter(worker_id=worker_id).update(**fields):
        WorkerHeartbeat.objects.update_or_create(worker_id=worker_id, defaults=fields,
                                                 create_defaults={**fields, "started_at": now})


def heartbeat_step(*, worker_id: str, step: str) -> None:
    WorkerHeartbeat.objects.filter(worker_id=worker_id).update(current_step=step, last_seen_at=timezone.now())


def heartbeat_step_renewing(*, worker_id: str, step: str, lease: str, holder: str) -> bool:
    """The worker enters ``step`` still holding ``lease``: the lease is renewed (``lease_renew``) and the
    heartbeat names the step, in one statement on PostgreSQL (one commit, not two). False, with the
    heartbeat left as it was, when the lease was lost."""
    if connection.vendor != "postgresql":
        if not lease_renew(name=lease, holder=holder):
            return False
        heartbeat_step(worker_id=worker_id, step=step)
        return True
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.AICMO_CAM_LOCK_TTL_SECONDS)
    with connection.cursor() as cursor:
        # Data-modifying CTEs all run, whether the outer query reads them or not; the heartbeat's waits for
        # the renewal through EXISTS, as lease_renew-then-heartbeat_step would.
        cursor.execute(f"""
            WITH renewed AS (
                UPDATE {Lease._meta.db_table} SET expires_at = %s WHERE name = %s AND holder = %s RETURNING 1
            ), beat AS (
                UPDATE {WorkerHeartbeat._meta.db_table} SET current_step = %s, last_seen_at = %s
                WHERE worker_id = %s AND EXISTS (SELECT FROM renewed)
            )
            SELECT count(*) FROM renewed""", [expires_at, lease, holder, step, now, worker_id])
        (renewed,) = cursor.fetchone()
    return bool(renewed)


def heartbeat_cycle_finished(*, worker_id: str, errors: dict[str, str]) -> None:
    """The cycle is over: IDLE, or ERROR with the failing steps' errors when one failed.

    ``last_error`` keeps the last failure after later clean cycles; ``status`` says whether the most
    recent cycle was clean.
    """
    now = timezone.now()
    fields = {"status": Status.ERROR if errors else Status.IDLE, "current_step": "", "last_cycle_finished_at": now,
              "last_seen_at": now, "cycles_completed": F("cycles_completed") + 1}
    if errors:
        fields["last_error"] = "\n".join(f"{step}: {error}" for step, error in errors.items())[:5000]
    WorkerHeartbeat.objects.filter(worker_id=worker_id).update(**fields)


def heartbeat_cycles_failed(*, worker_id: str, error: str) -> None:
    """Cycles failed before the worker could say so (the database was away): ERROR with why, written
    once the database answers; the row is created if the worker never reported before."""
    now = timezone.now()
    fields = {"status": Status.ERROR, "current_step": "", "last_error": error[:5000], "last_seen_at": now,
              "hostname": socket.gethostname()[:255], "pid": os.getpid()}
    WorkerHeartbeat.objects.update_or_create(worker_id=worker_id, defaults=fields,
                                             create_defaults={**fields, "started_at": now})


def heartbeat_seen(*, worker_id: str) -> None:
    """A worker that skipped its cycle (another one held it) is still alive."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id, defaults={"last_seen_at": now},
        create_defaults={"status": Status.IDLE, "last_seen_at": now, "started_at": now,
                         "hostname": socket.gethostname()[:255], "pid": os.getpid()})


def heartbeat_stopped(*, worker_id: str) -> None:
    """A clean exit: STOPPED, so nobody mistakes it for a crash."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id).update(
        status=Status.STOPPED, current_step="", last_seen_at=timezone.now())


def watchdog_check(*, now: datetime | None = None) -> dict[str, int]:
    """Queue one ``WORKER_STALE`` alert per outage when no worker has been seen for three intervals.

    An outage is named by the last heartbeat before it, so every check during the same silence uses
    the same idempotency key and alerts once; when a worker comes back and goes silent again, that
    is a new outage and a new alert. Before any worker ever reported there is nothing to watch (an
    uninstalled or overdue schedule is reported by the dashboard instead).
    Returns ``stale`` (1 when stale) and ``alerts_queued`` (new alert rows).
    """
    now = now or timezone.now()
    last_seen = WorkerHeartbeat.objects.aggregate(at=Max("last_seen_at"))["at"]
    if last_seen is None or last_seen >= now - stale_after():
        return {"stale": 0, "alerts_queued": 0}
    key = f"worker-stale:{last_seen.isoformat()}"
    before = HumanAlertLog.objects.filter(idempotency_key__startswith=f"{key}|").count()
    rows = alert_queue(
        alert_type=HumanAlertLog.AlertType.WORKER_STALE,
        title=f"No CAM worker seen since {last_seen:%Y-%m-%d %H:%M} UTC",
        body=(f"No worker has reported for {int((now - last_seen).total_seconds())} s (more than "
              f"{STALE_AFTER_INTERVALS} intervals of {worker_interval_seconds()} s). Emails are "
              f"not being sent and inboxes are not being read until a worker runs again: check "
              f"`.venv/bin/python manage.py cam_worker` or the qcluster."),
        idempotency_key=key)
    return {"stale": 1, "alerts_queued": len(rows) - before}
