"""How long job runs are kept: the frequent jobs' runs roll up into days.

The worker cycle and the watchdog each record a run every interval — about 2,900 rows a day with two
workers — and nothing else ever removed them. ``job_runs_prune`` keeps the last
``AICMO_CAM_JOB_RUN_RETENTION_DAYS`` days of those runs as they are (the dashboard, the health checks
and people reading a failure need only recent ones) and folds older ones into ``JobRunDay``: per job,
day and status, how many runs and how long they took. Other jobs run a few times a day and are kept.
A run still ``RUNNING`` is never touched; the watchdog settles those.

Batches of ``BATCH`` runs, each in its own transaction at the same few queries (the runs, their days so
far, the days written, the delete), so a first prune of a year of runs never holds a long lock.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import TruncDate
from django.utils import timezone

from cam.models import JobExecution, JobRunDay

FREQUENT_JOBS = ("worker_cycle", "watchdog")
BATCH = 5000


def job_runs_prune(*, now: datetime | None = None, keep_days: int | None = None) -> dict[str, int]:
    """Fold the frequent jobs' runs older than ``keep_days`` into days and delete them; returns how
    many runs were folded and into how many days."""
    now = now or timezone.now()
    keep_days = settings.AICMO_CAM_JOB_RUN_RETENTION_DAYS if keep_days is None else keep_days
    cutoff = now - timedelta(days=keep_days)
    pruned, days = 0, set()
    while True:
        folded, touched = _prune_batch(cutoff)
        pruned += folded
        days |= touched
        if folded < BATCH:
            return {"runs_pruned": pruned, "days": len(days)}


@transaction.atomic
def _prune_batch(cutoff: datetime) -> tuple[int, set[tuple[str, date, str]]]:
    runs = list(JobExecution.objects.filter(job__in=FREQUENT_JOBS, started_at__lt=cutoff)
                .exclude(status=JobExecution.Status.RUNNING)
                .order_by("started_at", "id")
                .annotate(day=TruncDate("started_at"))
                .values_list("id", "job", "day", "status", "started_at", "finished_at")[:BATCH])
    if not runs:
        return 0, set()
    added: dict[tuple[str, date, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for _, job, day, status, started_at, finished_at in runs:
        totals = added[(job, day, status)]
        seconds = (finished_at - started_at).total_seconds() if finished_at else 0.0
        totals[0] += 1
        totals[1] += seconds
        totals[2] = max(totals[2], seconds)
    jobs = {job for job, _, _ in added}
    existing = {(row.job, row.day, row.status): row for row in JobRunDay.objects.filter(
        job__in=jobs, day__in={day for _, day, _ in added})}
    rows = []
    for key, (count, seconds_total, seconds_max) in added.items():
        before = existing.get(key)
        job, day, status = key
        rows.append(JobRunDay(
            job=job, day=day, status=status, runs=count + (before.runs if before else 0),
            seconds_total=seconds_total + (before.seconds_total if before else 0),
            seconds_max=max(seconds_max, before.seconds_max if before else 0)))
    # The days are written from what this transaction read, so two prunes must not overlap: the job's
    # lease (``run_job``) makes sure of it.
    JobRunDay.objects.bulk_create(rows, update_conflicts=True, unique_fields=["job", "day", "status"],
                                  update_fields=["runs", "seconds_total", "seconds_max"])
    JobExecution.objects.filter(pk__in=[run[0] for run in runs]).delete()
    return len(runs), set(added)
