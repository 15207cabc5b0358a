"""The dashboard: how the machinery is doing, in a fixed handful of queries.

``get_dashboard()`` feeds the admin's dashboard page and the API's metrics endpoint. Its query count
does not depend on how many job executions, campaigns or mailboxes exist: the week's job runs come from
the hours the watchdog rolled up and the runs of the hour or so since (``cam.jobs.run_hours``), never
counted again from a week of runs.
Campaign and mailbox rates here come from their stored ``MetricSnapshot`` (written by
``cam.decisions.metrics_compute``), as the API has always served them; the admin's dashboard shows the
live figures of ``cam.reporting`` beside them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import IntegerField, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django_q.models import Schedule

from cam.jobs.heartbeat import STALE_AFTER_INTERVALS, stale_after
from cam.jobs.registry import job_names
from cam.jobs.run_hours import week_of_runs
from cam.jobs.schedules import declared_schedules
from cam.models import Campaign, JobExecution, Mailbox, WorkerHeartbeat
from cam.models.decisions import snapshot_computed_at
from cam.outreach.planning import daily_cap_of

Status = JobExecution.Status

# A schedule whose next run is this far in the past means no cluster is taking it.
OVERDUE_GRACE = timedelta(minutes=10)
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


def _last_runs(jobs: list[str]) -> dict[str, JobExecution]:
    """The latest run of each job that actually ran (skips are not runs), in one query: per job, a
    subquery that walks the (job, started_at) index backwards to its newest run, however many there are."""
    ran = JobExecution.objects.exclude(status=Status.SKIPPED)
    latest = Q()
    for job in jobs:
        latest |= Q(pk=Subquery(ran.filter(job=job).order_by("-started_at", "-pk").values("pk")[:1]))
    if not latest:
        return {}
    return {e.job: e for e in JobExecution.objects.filter(latest)}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _job_metrics(jobs: list[str], now: datetime) -> dict[str, dict[str, Any]]:
    """Per job, its runs of the last week by status and the mean and p95 time of those that finished
    (completed or failed): from the hours rolled up so far and the few runs since (``week_of_runs``,
    three queries whatever the number of runs). The p95 is exact while no hour is rolled up, else within
    the 5 % of a histogram bucket."""
    weeks = week_of_runs(jobs, now=now)
    metrics: dict[str, dict[str, Any]] = {}
    for job in jobs:
        week = weeks[job]
        counts = week.counts
        metrics[job] = {"runs": sum(counts.values()), "completed": counts[Status.COMPLETED],
                        "failed": counts[Status.FAILED], "skipped": counts[Status.SKIPPED],
                        "running": counts[Status.RUNNING], "mean_duration_seconds": _seconds(week.mean()),
                        "p95_duration_seconds": _seconds(week.p95())}
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
                   "metric_snapshots__all_time", "_computed_at")


def _computed_at() -> dict[str, Any]:
    """When the subject's snapshot was last computed (not only when its counts last changed), as ``_computed_at``."""
    return {"_computed_at": snapshot_computed_at("metric_snapshots__computed_at")}


def _snapshot_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The snapshot part of a subject's row; every value None when it was never computed."""
    has_snapshot = row["metric_snapshots__computed_at"] is not None
    return {
        "computed_at": row["_computed_at"],
        "window_days": row["metric_snapshots__window_days"],
        "window": _key_rates(row["metric_snapshots__window"] or {}) if has_snapshot else None,
        "all_time": _key_rates(row["metric_snapshots__all_time"] or {}) if has_snapshot else None,
    }


def _campaigns() -> list[dict[str, Any]]:
    """Every campaign with its status, its daily cap as the planner applies it (``campaign_daily_cap``: half
    while degraded, said in ``cap_note``) and key rates: one query (a subject has at most one snapshot; its
    active mailboxes' caps are summed in a subquery)."""
    rows = (Campaign.objects.order_by("name").annotate(_mailbox_caps=_active_mailbox_caps(), **_computed_at())
            .values("id", "name", "status", "status_reason", "daily_cap", "_mailbox_caps", *SNAPSHOT_VALUES))
    campaigns = []
    for row in rows:
        limit = daily_cap_of(status=row["status"], daily_cap=row["daily_cap"], mailbox_caps=[row["_mailbox_caps"] or 0])
        campaigns.append({"id": row["id"], "name": row["name"], "status": row["status"],
                          "status_reason": row["status_reason"], "daily_cap": row["daily_cap"],
                          "effective_daily_cap": limit.cap, "cap_note": limit.words(), **_snapshot_fields(row)})
    return campaigns


def _active_mailbox_caps() -> Subquery:
    """The daily caps of a campaign's active mailboxes, added up (None without one)."""
    summed = (Mailbox.objects.filter(campaigns=OuterRef("pk"), is_active=True).order_by()
              .values("campaigns").annotate(total=Sum("daily_cap")).values("total"))
    return Subquery(summed, output_field=IntegerField())


def _mailboxes() -> list[dict[str, Any]]:
    """Every mailbox with whether it sends, why its last poll or batch failed, and its key rates: one query."""
    rows = Mailbox.objects.order_by("name").annotate(**_computed_at()).values(
        "id", "name", "provider", "is_active", "last_poll_error", "last_send_error", *SNAPSHOT_VALUES)
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
        "job_metrics": _job_metrics(jobs, now),
        "recent_jobs": [_execution(e) for e in recent],
        "worker": worker,
        "campaigns": _campaigns(),
        "mailboxes": mailboxes,
    }
