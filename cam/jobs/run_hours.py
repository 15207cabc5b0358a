"""The week of job runs the dashboard reports, kept as hours so that it is not counted again on every call.

Every closed hour of runs is rolled up once into ``JobRunHour`` per job: how many runs completed, failed
or were skipped, the timed runs' seconds added up (the mean stays exact), and their durations in a
histogram of fixed buckets, each bucket 5 % wider than the one below (``bucket_of``), with the longest
duration that fell in it. A percentile read from the hours is the longest duration of the bucket that
holds the exact one, so it is a real duration at most 5 % away from the exact percentile (all durations
under 1 ms share the first bucket).

The watchdog rolls up (``job_run_hours_roll_up``, every minute; nothing to do but one read until an
hour closes). An hour is rolled up only once it is over and holds no run still ``RUNNING``: those are
the runs whose status can still change, so a rolled-up hour stays true. The hour of a run recorded late
(a run that ended while the database was away, one that never began) is counted again
(``job_run_hours_refresh``). Until the watchdog has run, the dashboard reads the runs themselves
(``week_of_runs``): the figures are the same, only slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from cam.models import JobExecution, JobRunHour, MetricCursor

Status = JobExecution.Status

WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)
CURSOR = "job_run_hours"
# The buckets: the first holds every duration up to FIRST_BUCKET_SECONDS, each next one is RATIO wider.
FIRST_BUCKET_SECONDS = 0.001
RATIO = 1.05
TIMED = (Status.COMPLETED, Status.FAILED)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration: 0 up to 1 ms, then i for (1 ms × 1.05^(i-1), 1 ms × 1.05^i]."""
    if seconds <= FIRST_BUCKET_SECONDS:
        return 0
    return max(1, math.ceil(math.log(seconds / FIRST_BUCKET_SECONDS) / math.log(RATIO)))


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class JobWeek:
    """One job's runs over the window: counts per status, and the timed runs' durations, either exact
    (runs read one by one) or as buckets (from the hours)."""

    counts: dict[str, int] = field(default_factory=lambda: {status: 0 for status in Status})
    seconds_total: float = 0.0
    exact: list[float] = field(default_factory=list)
    # bucket → [how many, the longest]
    buckets: dict[int, list[float]] = field(default_factory=dict)

    def add_run(self, status: str, started_at: datetime, finished_at: datetime | None) -> None:
        self.counts[status] += 1
        if status in TIMED and finished_at is not None:
            seconds = (finished_at - started_at).total_seconds()
            self.seconds_total += seconds
            self.exact.append(seconds)

    def add_hour(self, completed: int, failed: int, skipped: int, seconds_total: float,
                 buckets: dict[str, list[float]]) -> None:
        self.counts[Status.COMPLETED] += completed
        self.counts[Status.FAILED] += failed
        self.counts[Status.SKIPPED] += skipped
        self.seconds_total += seconds_total
        for key, (count, longest) in buckets.items():
            _add_to_bucket(self.buckets, int(key), count, longest)

    def timed(self) -> int:
        return len(self.exact) + int(sum(count for count, _ in self.buckets.values()))

    def mean(self) -> float | None:
        timed = self.timed()
        return self.seconds_total / timed if timed else None

    def p95(self) -> float | None:
        """The nearest-rank p95 (the ceil(0.95 n)-th of n timed runs): exact when every run was read one by
        one, else the longest duration of the bucket that holds it."""
        timed = self.timed()
        if not timed:
            return None
        rank = (timed * 95 + 99) // 100  # ceil(0.95 n) in whole numbers
        if not self.buckets:
            return sorted(self.exact)[rank - 1]
        buckets = {index: list(entry) for index, entry in self.buckets.items()}
        for seconds in self.exact:
            _add_to_bucket(buckets, bucket_of(seconds), 1, seconds)
        seen = 0
        for index in sorted(buckets):
            count, longest = buckets[index]
            seen += int(count)
            if seen >= rank:
                return longest
        return None  # not reached: the buckets hold every timed run


def _add_to_bucket(buckets: dict[int, list[float]], index: int, count: float, longest: float) -> None:
    entry = buckets.setdefault(index, [0, longest])
    entry[0] += count
    entry[1] = max(entry[1], longest)


def week_of_runs(jobs: list[str], *, now: datetime) -> dict[str, JobWeek]:
    """Each job's runs that started in the week before ``now``, in three queries whatever their number:
    the hour up to which runs are rolled up, the rolled-up hours, and the runs outside them (the part
    of the window's first hour inside the window, the hours since the last roll-up) one by one."""
    since = now - WINDOW
    first_full = hour_of(since) + (HOUR if hour_of(since) < since else timedelta(0))
    rolled_to = MetricCursor.objects.filter(name=CURSOR).values_list("scanned_at", flat=True).first()
    rolled_to = max(rolled_to or first_full, first_full)
    weeks = {job: JobWeek() for job in jobs}
    hours = (JobRunHour.objects.filter(job__in=jobs, hour__gte=first_full, hour__lt=rolled_to).order_by()
             .values_list("job", "completed", "failed", "skipped", "seconds_total", "buckets"))
    for job, *hour in hours:
        weeks[job].add_hour(*hour)
    # Two ranges of the (job, started_at) index, not the week's range filtered.
    outside = Q(started_at__gte=since, started_at__lt=first_full) | Q(started_at__gte=rolled_to)
    runs = (JobExecution.objects.filter(outside, job__in=jobs).order_by()
            .values_list("job", "status", "started_at", "finished_at"))
    for job, status, started_at, finished_at in runs:
        weeks[job].add_run(status, started_at, finished_at)
    return weeks


def _hours(runs: Any) -> list[JobRunHour]:
    """The ``JobRunHour`` rows of these finished runs, per job and hour."""
    hours: dict[tuple[str, datetime], JobRunHour] = {}
    for job, status, started_at, finished_at in runs:
        key = (job, hour_of(started_at))
        hour = hours.get(key)
        if hour is None:
            hour = hours[key] = JobRunHour(job=job, hour=key[1], buckets={})
        if status == Status.COMPLETED:
            hour.completed += 1
        elif status == Status.FAILED:
            hour.failed += 1
        elif status == Status.SKIPPED:
            hour.skipped += 1
        if status in TIMED and finished_at is not None:
            seconds = (finished_at - started_at).total_seconds()
            hour.seconds_total += seconds
            entry = hour.buckets.setdefault(str(bucket_of(seconds)), [0, seconds])
            entry[0] += 1
            entry[1] = max(entry[1], seconds)
    return list(hours.values())


def _runs_between(start: datetime, end: datetime) -> Any:
    return (JobExecution.objects.filter(started_at__gte=start, started_at__lt=end).order_by()
            .values_list("job", "status", "started_at", "finished_at"))


def job_run_hours_roll_up(*, now: datetime | None = None) -> dict[str, int]:
    """Roll up every closed hour of the window not rolled up yet, up to the first hour with a run still
    ``RUNNING``; drop the hours that left the window. One query when no hour closed since the last call.
    Returns ``job_run_hours``: how many hours of a job's runs were written.

    Each hour is counted from its runs and written whole (an upsert), so two roll-ups of the same hour
    write the same row."""
    now = now or timezone.now()
    current = hour_of(now)
    oldest = hour_of(now - WINDOW)
    cursor = MetricCursor.objects.filter(name=CURSOR).values_list("scanned_at", flat=True).first()
    start = max(cursor or oldest, oldest)
    if start >= current:
        return {"job_run_hours": 0}
    running = (JobExecution.objects.filter(status=Status.RUNNING, started_at__gte=start, started_at__lt=current)
               .aggregate(first=Min("started_at"))["first"])
    end = hour_of(running) if running is not None else current
    if end <= start:
        return {"job_run_hours": 0}
    with transaction.atomic():  # the hours and the cursor together
        hours = _hours(_runs_between(start, end))
        JobRunHour.objects.bulk_create(hours, update_conflicts=True, unique_fields=["job", "hour"],
                                       update_fields=["completed", "failed", "skipped", "seconds_total", "buckets"])
        # An upsert: two watchdogs rolling up at once write the same hours and the same cursor.
        MetricCursor.objects.bulk_create([MetricCursor(name=CURSOR, scanned_at=end)], update_conflicts=True,
                                         unique_fields=["name"], update_fields=["scanned_at"])
        JobRunHour.objects.filter(hour__lt=oldest).delete()
    return {"job_run_hours": len(hours)}


@transaction.atomic
def job_run_hours_refresh(started_at: datetime) -> None:
    """Count the hour of ``started_at`` again if it is rolled up already: a run was recorded in it late."""
    hour = hour_of(started_at)
    rolled_to = MetricCursor.objects.filter(name=CURSOR).values_list("scanned_at", flat=True).first()
    if rolled_to is None or hour >= rolled_to:
        return
    JobRunHour.objects.filter(hour=hour).delete()
    JobRunHour.objects.bulk_create(_hours(_runs_between(hour, hour + HOUR)))
