"""The worker cycle's and the watchdog's runs are kept for a while, then folded into one row per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cam.jobs import retention
from cam.jobs.retention import job_runs_prune
from cam.jobs.runner import run_job
from cam.models import JobExecution, JobRunDay
from tests.factories import JobExecutionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 20, 5, 0, tzinfo=UTC)


def run(job, status="COMPLETED", *, days_ago, seconds=2.0, minute=0):
    started = NOW - timedelta(days=days_ago) + timedelta(minutes=minute)
    return JobExecutionFactory(job=job, status=status, started_at=started,
                               finished_at=None if status == "RUNNING" else started + timedelta(seconds=seconds))


def test_old_runs_of_frequent_jobs_become_days_and_recent_ones_stay():
    for minute in range(3):
        run("worker_cycle", days_ago=20, seconds=1.0 + minute, minute=minute)
    run("worker_cycle", "FAILED", days_ago=20, seconds=4.0, minute=5)
    run("watchdog", days_ago=15, seconds=0.5)
    kept = [run("worker_cycle", days_ago=13), run("harvest", days_ago=300), run("worker_cycle", "RUNNING", days_ago=30)]

    result = job_runs_prune(now=NOW, keep_days=14)

    assert result == {"runs_pruned": 5, "days": 3}
    assert set(JobExecution.objects.values_list("pk", flat=True)) == {execution.pk for execution in kept}
    assert sorted(JobRunDay.objects.values_list("job", "day", "status", "runs", "seconds_total", "seconds_max")) == [
        ("watchdog", date(2026, 12, 5), "COMPLETED", 1, 0.5, 0.5),
        ("worker_cycle", date(2026, 11, 30), "COMPLETED", 3, 6.0, 3.0),
        ("worker_cycle", date(2026, 11, 30), "FAILED", 1, 4.0, 4.0),
    ]


def test_a_day_folded_in_several_batches_or_prunes_adds_up(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(retention, "BATCH", 4)
    for minute in range(10):
        run("worker_cycle", days_ago=20, seconds=1.0, minute=minute)

    # Three batches (4, 4, 2) of the same queries each: the runs, their days so far, the days written,
    # and the delete (the runs read, harvest rejections let go of them, the runs deleted), in a savepoint.
    with django_assert_num_queries(3 * 8):
        job_runs_prune(now=NOW, keep_days=14)
    run("worker_cycle", days_ago=20, seconds=9.0, minute=30)
    job_runs_prune(now=NOW, keep_days=14)

    day = JobRunDay.objects.get()
    assert (day.runs, day.seconds_total, day.seconds_max) == (11, 19.0, 9.0)
    assert not JobExecution.objects.exists()


def test_it_runs_as_a_job_with_the_configured_retention(settings):
    settings.AICMO_CAM_JOB_RUN_RETENTION_DAYS = 7
    old = run("watchdog", days_ago=8)
    old.started_at = datetime.now(UTC) - timedelta(days=8)
    old.save()

    result = run_job("job_runs_prune")

    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert (execution.status, execution.counts) == ("COMPLETED", {"runs_pruned": 1, "days": 1})
    assert JobRunDay.objects.get().job == "watchdog"
