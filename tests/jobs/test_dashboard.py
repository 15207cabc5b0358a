"""get_dashboard(): its shape, its health states, and a fixed number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from cam.dashboard import get_dashboard
from cam.jobs.schedules import declared_schedules, schedules_install
from tests import factories

pytestmark = pytest.mark.django_db


def execution(job: str, status: str, minutes_ago: float, seconds: float = 2.0, **extra):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return factories.JobExecutionFactory(job=job, status=status, started_at=started,
                                         finished_at=started + timedelta(seconds=seconds), **extra)


def test_it_has_the_documented_shape():
    schedules_install()
    dashboard = get_dashboard()
    assert set(dashboard) >= {"timestamp", "health_status", "scheduler_status", "job_metrics", "recent_jobs",
                              "worker"}
    assert [entry["job"] for entry in dashboard["scheduler_status"]] == [s.job for s in declared_schedules()]
    assert set(dashboard["scheduler_status"][0]) >= {"schedule", "last_run", "last_status", "next_run", "health"}
    assert set(dashboard["job_metrics"]["harvest"]) >= {"runs", "completed", "failed", "skipped",
                                                        "mean_duration_seconds", "p95_duration_seconds"}


def test_it_is_healthy_when_schedules_are_installed_and_nothing_failed():
    schedules_install()
    execution("harvest", "COMPLETED", minutes_ago=5)
    dashboard = get_dashboard()
    assert (dashboard["health_status"], dashboard["health_reasons"]) == ("healthy", [])
    assert dashboard["scheduler_status"][0]["last_status"] == "COMPLETED"


def test_it_is_degraded_when_a_jobs_last_run_failed_and_names_it():
    schedules_install()
    execution("score", "COMPLETED", minutes_ago=60)
    execution("score", "FAILED", minutes_ago=5, error="RuntimeError: boom")
    dashboard = get_dashboard()
    assert dashboard["health_status"] == "degraded"
    assert any(r.startswith("score: last run failed (RuntimeError: boom") for r in dashboard["health_reasons"])
    assert dashboard["scheduler_status"][1]["health"] == "failing"


def test_it_is_degraded_when_schedules_are_missing():
    dashboard = get_dashboard()
    assert dashboard["health_status"] == "degraded"
    assert "harvest: schedule not installed (run manage.py cam_schedules)" in dashboard["health_reasons"]


def test_it_is_unhealthy_when_a_schedule_is_overdue():
    schedules_install()
    Schedule.objects.filter(name="cam: harvest").update(next_run=timezone.now() - timedelta(hours=2))
    dashboard = get_dashboard()
    assert dashboard["health_status"] == "unhealthy"
    assert dashboard["scheduler_status"][0]["health"] == "overdue"
    assert any("is qcluster running?" in reason for reason in dashboard["health_reasons"])


def test_it_computes_job_metrics_over_the_window():
    for seconds in (1, 2, 3, 4, 100):
        execution("harvest", "COMPLETED", minutes_ago=30, seconds=seconds)
    execution("harvest", "FAILED", minutes_ago=20, seconds=6)
    execution("harvest", "SKIPPED", minutes_ago=10, seconds=0)
    execution("harvest", "COMPLETED", minutes_ago=60 * 24 * 30, seconds=500)  # outside the window
    metrics = get_dashboard()["job_metrics"]["harvest"]
    assert (metrics["runs"], metrics["completed"], metrics["failed"], metrics["skipped"]) == (7, 5, 1, 1)
    assert metrics["mean_duration_seconds"] == pytest.approx(116 / 6, abs=0.01)
    assert metrics["p95_duration_seconds"] == 100


def test_it_lists_the_last_ten_runs_newest_first():
    for minutes in range(15):
        execution("qualify", "COMPLETED", minutes_ago=minutes)
    recent = get_dashboard()["recent_jobs"]
    assert len(recent) == 10
    assert recent[0]["started_at"] > recent[-1]["started_at"]


@pytest.mark.parametrize("executions", [1, 60])
def test_it_costs_the_same_queries_however_many_executions_exist(django_assert_num_queries, executions):
    schedules_install()
    campaign = factories.CampaignFactory()
    for index in range(executions):
        execution(["harvest", "score", "qualify"][index % 3], ["COMPLETED", "FAILED"][index % 2],
                  minutes_ago=index, campaign=campaign)
    with django_assert_num_queries(6):
        get_dashboard()


def test_it_shows_the_workers_and_is_unhealthy_when_none_was_seen_for_three_intervals(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    schedules_install()
    factories.WorkerHeartbeatFactory(worker_id="host-1", last_seen_at=timezone.now() - timedelta(minutes=4))
    dashboard = get_dashboard()
    assert dashboard["health_status"] == "unhealthy"
    assert any(r.startswith("worker: no heartbeat since") for r in dashboard["health_reasons"])
    assert (dashboard["worker"]["stale"], dashboard["worker"]["workers"][0]["worker_id"]) == (True, "host-1")

    factories.WorkerHeartbeatFactory(worker_id="host-2", last_seen_at=timezone.now())
    dashboard = get_dashboard()
    assert (dashboard["health_status"], dashboard["worker"]["stale"]) == ("healthy", False)
    assert [w["worker_id"] for w in dashboard["worker"]["workers"]] == ["host-2", "host-1"]


def test_it_is_not_stale_before_any_worker_reported(settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    schedules_install()
    dashboard = get_dashboard()
    assert (dashboard["health_status"], dashboard["worker"]) == (
        "healthy", {"last_seen_at": None, "stale_after_seconds": 180, "stale": False, "workers": []})
