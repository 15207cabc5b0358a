"""Job-run retention: the worker's cycle writes a run a minute (about 2,900 rows a day with the skips of a
second worker), so runs older than ``AICMO_CAM_JOB_RUN_RETENTION_DAYS`` are summed into one ``JobRunDay``
row per job, UTC day and status and deleted.

Bounded: one call takes at most ``BATCH`` of the oldest runs, so a year of backlog is worked off over a
few hundred cycles, each short; the summary and the deletion share one transaction, so a run is counted
exactly once. Runs still ``RUNNING`` are left to the watchdog, which settles them first.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cam.models import JobExecution, JobRunDay

# The jobs whose runs are summed: the cycle's, which is the one that runs every interval.
KEPT_AS_DAYS = ("worker_cycle",)
BATCH = 5_000


def job_runs_prune(*, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Sum and delete up to ``batch`` runs older than the retention; say how many (``pruned``) and into how
    many day summaries (``days``). One query when there is nothing to do."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AICMO_CAM_JOB_RUN_RETENTION_DAYS)
    with transaction.atomic():
        rows = list(JobExecution.objects.filter(job__in=KEPT_AS_DAYS, started_at__lt=cutoff)
                    .exclude(status=JobExecution.Status.RUNNING)
                    .order_by("started_at", "pk").values_list("pk", "job", "status", "started_at", "finished_at")
                    [:batch])
        if not rows:
            return {"pruned": 0, "days": 0}
        sums: dict[tuple[str, date, str], list[float]] = {}
        for _, job, status, started_at, finished_at in rows:
            entry = sums.setdefault((job, started_at.astimezone(UTC).date(), status), [0, 0, 0.0])
            entry[0] += 1
            if finished_at is not None:
                entry[1] += 1
                entry[2] += (finished_at - started_at).total_seconds()
        # Added to the days already summed: read under lock (one cycle prunes at a time anyway, by its
        # lease), then written in one upsert, so the count of queries does not depend on the days.
        days = set(sums)
        existing = JobRunDay.objects.select_for_update().filter(
            job__in={key[0] for key in days}, day__in={key[1] for key in days}, status__in={key[2] for key in days})
        for summary in existing:
            found = sums.get((summary.job, summary.day, summary.status))
            if found is not None:
                found[0] += summary.runs
                found[1] += summary.timed
                found[2] += summary.seconds
        JobRunDay.objects.bulk_create(
            [JobRunDay(job=job, day=day, status=status, runs=runs, timed=timed, seconds=seconds)
             for (job, day, status), (runs, timed, seconds) in sums.items()],
            update_conflicts=True, unique_fields=["job", "day", "status"], update_fields=["runs", "timed", "seconds"])
        JobExecution.objects.filter(pk__in=[row[0] for row in rows]).delete()
    return {"pruned": len(rows), "days": len(sums)}
