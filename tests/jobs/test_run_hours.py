"""The dashboard's week of job runs from rolled-up hours: the same figures as counting the runs, the p95
within its bucket's 5 %, and hours rolled up only once nothing in them can change."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from cam.dashboard import get_dashboard
from cam.jobs.run_hours import RATIO, bucket_of, job_run_hours_roll_up
from cam.jobs.runner import job_record_unrun
from cam.models import JobRunHour
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 15, 20, 30, tzinfo=UTC)


def run(job: str, status: str, started_at: datetime, seconds: float | None = 2.0):
    finished = None if seconds is None else started_at + timedelta(seconds=seconds)
    return factories.JobExecutionFactory(job=job, status=status, started_at=started_at, finished_at=finished)


def a_week_of_runs(seed: int = 7) -> None:
    """Runs every 37 minutes over eight days (some before the window), durations from 5 ms to 20 minutes."""
    rng = random.Random(seed)
    at = NOW - timedelta(days=8)
    while at < NOW:
        status = rng.choice(["COMPLETED"] * 6 + ["FAILED", "SKIPPED"])
        run(rng.choice(["worker_cycle", "harvest"]), status, at, seconds=round(rng.lognormvariate(1, 2), 3) + 0.005)
        at += timedelta(minutes=37)


def job_metrics() -> dict:
    return get_dashboard(now=NOW)["job_metrics"]


def test_a_duration_falls_in_a_bucket_at_most_5_percent_wide():
    assert bucket_of(0.0) == bucket_of(0.001) == 0
    for seconds in (0.0011, 0.25, 1.0, 38.0, 3600.0):
        index = bucket_of(seconds)
        assert 0.001 * RATIO ** (index - 1) < seconds * (1 + 1e-9)
        assert seconds <= 0.001 * RATIO ** index * (1 + 1e-9)


def test_the_hours_give_the_figures_of_the_runs_with_the_p95_within_its_bucket():
    a_week_of_runs()
    exact = job_metrics()

    assert job_run_hours_roll_up(now=NOW)["job_run_hours"] == JobRunHour.objects.count() > 100
    rolled = job_metrics()

    for job, figures in exact.items():
        got = rolled[job]
        assert {key: got[key] for key in ("runs", "completed", "failed", "skipped", "running")} == {
            key: figures[key] for key in ("runs", "completed", "failed", "skipped", "running")}, job
        if figures["runs"] == 0:
            assert got == figures
            continue
        assert got["mean_duration_seconds"] == pytest.approx(figures["mean_duration_seconds"], abs=0.002)
        assert figures["p95_duration_seconds"] / RATIO <= got["p95_duration_seconds"] <= (
            figures["p95_duration_seconds"] * RATIO), job
    assert exact["worker_cycle"]["runs"] > 100


def test_runs_of_the_last_hour_and_of_the_windows_first_hour_are_counted_one_by_one():
    run("harvest", "COMPLETED", NOW - timedelta(days=7, minutes=1), seconds=500)  # just outside the window
    run("harvest", "COMPLETED", NOW - timedelta(days=7) + timedelta(minutes=1), seconds=3)  # its first hour
    run("harvest", "COMPLETED", NOW - timedelta(days=3), seconds=4)
    run("harvest", "FAILED", NOW - timedelta(minutes=5), seconds=5)  # the hour not over yet
    job_run_hours_roll_up(now=NOW)
    metrics = job_metrics()["harvest"]
    assert (metrics["runs"], metrics["completed"], metrics["failed"]) == (3, 2, 1)
    assert metrics["mean_duration_seconds"] == 4.0


def test_an_hour_with_a_run_still_going_waits_and_so_do_the_hours_after_it():
    running = run("harvest", "RUNNING", NOW - timedelta(hours=5), seconds=None)
    run("harvest", "COMPLETED", NOW - timedelta(hours=3), seconds=3)
    assert job_run_hours_roll_up(now=NOW)["job_run_hours"] == 0  # every hour before it was empty
    assert not JobRunHour.objects.exists()

    running.status, running.finished_at = "FAILED", running.started_at + timedelta(seconds=9)
    running.save()
    assert job_run_hours_roll_up(now=NOW)["job_run_hours"] == 2
    metrics = job_metrics()["harvest"]
    assert (metrics["runs"], metrics["failed"], metrics["running"], metrics["mean_duration_seconds"]) == (2, 1, 0, 6.0)
    assert JobRunHour.objects.count() == 2


def test_a_run_recorded_late_in_a_rolled_up_hour_is_counted(settings):
    run("worker_cycle", "COMPLETED", NOW - timedelta(hours=2), seconds=3)
    job_run_hours_roll_up(now=NOW)
    job_record_unrun("worker_cycle", error="Database connection lost", started_at=NOW - timedelta(hours=2, minutes=-1),
                     finished_at=NOW - timedelta(hours=2, minutes=-2))
    metrics = job_metrics()["worker_cycle"]
    assert (metrics["runs"], metrics["completed"], metrics["failed"]) == (2, 1, 1)


def test_rolling_up_again_changes_nothing_and_costs_one_query_until_an_hour_closes(django_assert_num_queries):
    a_week_of_runs()
    job_run_hours_roll_up(now=NOW)
    before = list(JobRunHour.objects.order_by("job", "hour").values())
    with django_assert_num_queries(1):
        assert job_run_hours_roll_up(now=NOW + timedelta(minutes=30)) == {"job_run_hours": 0}
    assert list(JobRunHour.objects.order_by("job", "hour").values()) == before


def test_hours_that_left_the_window_are_dropped():
    a_week_of_runs()
    job_run_hours_roll_up(now=NOW)
    job_run_hours_roll_up(now=NOW + timedelta(days=2))
    assert JobRunHour.objects.order_by("hour").first().hour >= NOW + timedelta(days=2) - timedelta(days=7, hours=1)


@pytest.mark.parametrize("rolled_up", [False, True])
def test_the_dashboard_costs_the_same_queries_with_or_without_hours(django_assert_num_queries, rolled_up):
    a_week_of_runs()
    if rolled_up:
        job_run_hours_roll_up(now=NOW)
    with django_assert_num_queries(9):
        get_dashboard(now=NOW)
