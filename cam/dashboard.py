"""The dashboard: how the machinery is doing, in a fixed handful of queries.

``get_dashboard()`` feeds the admin's dashboard page and the API's metrics endpoint. Its query count
does not depend on how many job executions, campaigns or mailboxes exist. Campaign and mailbox rates
come from their stored ``MetricSnapshot`` (written by ``cam.decisions.metrics_compute``), not from
counting emails again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Max, Q
from django.utils import timezone
from django_q.models import Schedule

from cam.jobs.heartbeat import STALE_AFTER_INTERVALS, stale_after
from cam.jobs.registry import job_names
from cam.jobs.schedules import declared_schedules
from cam.models import Campaign, JobExecution, Mailbox, WorkerHeartbeat

Status = JobExecution.Status

# A schedule whose next run is this far in the past means no cluster is taking it.
OVERDUE_GRACE = timedelta(minutes=10)
METRICS_WINDOW = timedelta(days=7)
RECENT = 10
WORKERS_SHOWN = 20

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"

# The snapshot counts shown per campaign and mailbox; each comes with its ``<count>_rate`` (percent of
# the emails sent, None before the first send).
KEY_COUNTS = ("replies", "positive", "bounced_hard", "complaints", "unsubscribes")


def _execution(execution: JobExecution | None) -> dict[str, Any] | None:
    if execution is None:
        return None
    return {
        "execution_id": execution.execution_id,
        "job": execution.job,
        "campaign": execution.campaign_id,
        "status": execution.status,
        "trigger": execution.trigger,
        "reason": execution.reason,
        "counts": execution.counts,
        "error": execution.error,
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "duration_seconds": execution.duration_seconds,
    }


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _last_runs(jobs: list[str]) -> dict[str, JobExecution]:
    """The latest run of each job that actually ran (skips are not runs)."""
    latest = (JobExecution.objects.filter(job__in=jobs).exclude(status=Status.SKIPPED).values("job")
              .annotate(at=Max("started_at")))
    pairs = Q()
    for row in latest:
        pairs |= Q(job=row["job"], started_at=row["at"])
    if not pairs:
        return {}
    return {e.job: e for e in JobExecution.objects.filter(pairs).exclude(status=Status.SKIPPED)}


def _job_metrics(jobs: list[str], since: datetime) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {job: {"runs": 0, "completed": 0, "failed": 0, "skipped": 0, "running": 0,
                                            "mean_duration_seconds": None, "p95_duration_seconds": None}
                                      for job in jobs}
    durations: dict[str, list[float]] = defaultdict(list)
    rows = (JobExecution.objects.filter(started_at__gte=since, job__in=jobs)
            .values_list("job", "status", "started_at", "finished_at"))
    for job, status, started, finished in rows.iterator():
        entry = metrics[job]
        entry["runs"] += 1
        entry[status.lower()] += 1
        if status in (Status.COMPLETED, Status.FAILED) and finished:
            durations[job].append((finished - started).total_seconds())
    for job, values in durations.items():
        metrics[job]["mean_duration_seconds"] = round(sum(values) / len(values), 3)
        metrics[job]["p95_duration_seconds"] = round(cast(float, _p95(values)), 3)  # values is never empty
    return metrics


def _worker(now: datetime) -> dict[str, Any]:
    """The workers' heartbeats, newest first, and whether the newest is older than three intervals.

    Stale is only judged once some worker has reported: before that, an uninstalled or overdue
    worker-cycle schedule is what the scheduler status reports.
    """
    rows = list(WorkerHeartbeat.objects.order_by("-last_seen_at")[:WORKERS_SHOWN])
    last_seen = rows[0].last_seen_at if rows else None
    return {
        "last_seen_at": last_seen,
        "stale_after_seconds": int(stale_after().total_seconds()),
        "stale": last_seen is not None and last_seen < now - stale_after(),
        "workers": [{
            "worker_id": row.worker_id, "status": row.status, "current_step": row.current_step,
            "hostname": row.hostname, "pid": row.pid, "last_seen_at": row.last_seen_at,
            "last_cycle_started_at": row.last_cycle_started_at, "last_cycle_finished_at": row.last_cycle_finished_at,
            "cycles_completed": row.cycles_completed, "last_error": row.last_error,
        } for row in rows],
    }


def _key_rates(period: dict[str, Any]) -> dict[str, Any]:
    rates: dict[str, Any] = {"sent": period.get("sent", 0)}
    for name in KEY_COUNTS:
        rates[name] = period.get(name, 0)
        rates[f"{name}_rate"] = period.get(f"{name}_rate")
    return rates


SNAPSHOT_VALUES = ("metric_snapshots__computed_at", "metric_snapshots__window_days", "metric_snapshots__window",
                   "metric_snapshots__all_time")


def _snapshot_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The snapshot part of a subject's row; every value None when it was never computed."""
    has_snapshot = row["metric_snapshots__computed_at"] is not None
    return {
        "computed_at": row["metric_snapshots__computed_at"],
        "window_days": row["metric_snapshots__window_days"],
        "window": _key_rates(row["metric_snapshots__window"] or {}) if has_snapshot else None,
        "all_time": _key_rates(row["metric_snapshots__all_time"] or {}) if has_snapshot else None,
    }


def _campaigns() -> list[dict[str, Any]]:
    """Every campaign with its status and key rates: one query (a subject has at most one snapshot)."""
    rows = Campaign.objects.order_by("name").values("id", "name", "status", "status_reason", *SNAPSHOT_VALUES)
    return [{"id": row["id"], "name": row["name"], "status": row["status"], "status_reason": row["status_reason"],
             **_snapshot_fields(row)} for row in rows]


def _mailboxes() -> list[dict[str, Any]]:
    """Every mailbox with whether it sends, why its last poll or batch failed, and its key rates: one query."""
    rows = Mailbox.objects.order_by("name").values("id", "name", "provider", "is_active", "last_poll_error",
                                                   "last_send_error", *SNAPSHOT_VALUES)
    return [{"id": row["id"], "name": row["name"], "provider": row["provider"], "is_active": row["is_active"],
             "poll_error": row["last_poll_error"], "send_error": row["last_send_error"],
             **_snapshot_fields(row)} for row in rows]


def get_dashboard(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    jobs = job_names()
    last_runs = _last_runs(jobs)
    installed = {s.name: s for s in Schedule.objects.filter(name__in=[d.schedule_name for d in declared_schedules()])}
    reasons: list[str] = []
    worst = HEALTHY

    def flag(level: str, reason: str) -> None:
        nonlocal worst
        reasons.append(reason)
        if level == UNHEALTHY or worst == HEALTHY:
            worst = level

    scheduler_status = []
    for spec in declared_schedules():
        schedule = installed.get(spec.schedule_name)
        last = last_runs.get(spec.job)
        if schedule is None:
            health = "not_installed"
            flag(DEGRADED, f"{spec.job}: schedule not installed (run .venv/bin/python manage.py cam_schedules)")
        elif schedule.next_run and schedule.next_run < now - OVERDUE_GRACE:
            health = "overdue"
            flag(UNHEALTHY, f"{spec.job}: was due at {schedule.next_run.isoformat()}; is qcluster running?")
        elif last is not None and last.status == Status.FAILED:
            health = "failing"
        else:
            health = "ok"
        scheduler_status.append({
            "job": spec.job,
            "schedule": spec.describe(),
            "next_run": schedule.next_run if schedule else None,
            "last_run": _execution(last),
            "last_status": last.status if last else None,
            "health": health,
        })
    for job, last in sorted(last_runs.items()):
        if last.status == Status.FAILED:
            flag(DEGRADED, f"{job}: last run failed ({last.error[:200]})")

    worker = _worker(now)
    if worker["stale"]:
        flag(UNHEALTHY, f"worker: no heartbeat since {worker['last_seen_at'].isoformat()} (more than "
                        f"{STALE_AFTER_INTERVALS} intervals); is a worker running?")
    elif worker["workers"] and worker["workers"][0]["status"] == WorkerHeartbeat.Status.ERROR:
        flag(DEGRADED, f"worker: a step of the last cycle failed ({worker['workers'][0]['last_error'][:200]})")

    mailboxes = _mailboxes()
    for mailbox in mailboxes:
        # A mailbox that cannot be read or cannot send loses replies or leads quietly: say which.
        if not mailbox["is_active"]:
            continue
        if mailbox["poll_error"]:
            flag(DEGRADED, f"mailbox {mailbox['name']}: cannot be polled ({mailbox['poll_error'][:200]})")
        if mailbox["send_error"]:
            flag(DEGRADED, f"mailbox {mailbox['name']}: cannot send ({mailbox['send_error'][:200]})")

    recent = JobExecution.objects.order_by("-started_at", "-id")[:RECENT]
    return {
        "timestamp": now,
        "health_status": worst,
        "health_reasons": reasons,
        "scheduler_status": scheduler_status,
        "job_metrics": _job_metrics(jobs, now - METRICS_WINDOW),
        "recent_jobs": [_execution(e) for e in recent],
        "worker": worker,
        "campaigns": _campaigns(),
        "mailboxes": mailboxes,
    }
