"""Job-run retention: worker-cycle runs older than the retention are summed per day and status, then
deleted, a bounded batch at a time; recent runs, running ones and other jobs' runs stay."""

from datetime import UTC, datetime, timedelta

import pytest

from cam.jobs.retention import job_runs_prune
from cam.models import JobExecution, JobRunDay

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
Status = JobExecution.Status


def run(job: str, started_at: datetime, status: str = Status.COMPLETED, seconds: float | None = 2.0) -> JobExecution:
    finished = started_at + timedelta(seconds=seconds) if seconds is not None else None
    return JobExecution.objects.create(execution_id=f"{job}:{started_at.isoformat()}:{status}", job=job,
                                       status=status, started_at=started_at, finished_at=finished)


def test_old_cycle_runs_are_summed_per_day_and_status_and_deleted(settings, django_assert_num_queries):
    settings.AICMO_CAM_JOB_RUN_RETENTION_DAYS = 14
    old_day = NOW - timedelta(days=20)
    for minute in range(3):
        run("worker_cycle", old_day + timedelta(minutes=minute), seconds=1.5)
    run("worker_cycle", old_day + timedelta(minutes=5), status=Status.SKIPPED, seconds=None)
    run("worker_cycle", old_day + timedelta(days=1), status=Status.FAILED, seconds=4.0)
    still_running = run("worker_cycle", old_day, status=Status.RUNNING, seconds=None)
    kept = run("worker_cycle", NOW - timedelta(days=13))
    other_job = run("harvest", old_day)

    with django_assert_num_queries(8):  # the runs, the days summed, one upsert, the delete, a savepoint
        assert job_runs_prune(now=NOW) == {"pruned": 5, "days": 3}

    assert set(JobExecution.objects.values_list("pk", flat=True)) == {still_running.pk, kept.pk, other_job.pk}
    summaries = {(row.day, row.status): (row.runs, row.timed, row.seconds) for row in JobRunDay.objects.all()}
    assert summaries == {(old_day.date(), Status.COMPLETED): (3, 3, 4.5),
                         (old_day.date(), Status.SKIPPED): (1, 0, 0.0),
                         (old_day.date() + timedelta(days=1), Status.FAILED): (1, 1, 4.0)}
    assert job_runs_prune(now=NOW) == {"pruned": 0, "days": 0}


def test_a_backlog_is_worked_off_in_bounded_batches_adding_to_the_same_day(django_assert_num_queries):
    old_day = NOW - timedelta(days=30)
    for second in range(7):
        run("worker_cycle", old_day + timedelta(seconds=second))

    assert job_runs_prune(now=NOW, batch=4) == {"pruned": 4, "days": 1}
    assert job_runs_prune(now=NOW, batch=4) == {"pruned": 3, "days": 1}
    with django_assert_num_queries(3):  # nothing left: one read (inside its savepoint)
        assert job_runs_prune(now=NOW, batch=4) == {"pruned": 0, "days": 0}

    assert JobExecution.objects.count() == 0
    assert JobRunDay.objects.values_list("runs", "timed", "seconds").get() == (7, 7, 14.0)
