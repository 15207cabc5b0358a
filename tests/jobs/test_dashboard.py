"""get_dashboard(): its shape, its health states, and a fixed number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from cam.dashboard import get_dashboard
from cam.decisions import metrics_compute
from cam.jobs.schedules import declared_schedules, schedules_install
from tests import factories

pytestmark = pytest.mark.django_db


def dashboard_queries() -> int:
    """What get_dashboard() costs: the week of job runs takes three (the hour rolled up to, the hours, the
    runs since), whatever the number of runs."""
    return 9


def execution(job: str, status: str, minutes_ago: float, seconds: float = 2.0, **extra):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return factories.JobExecutionFactory(job=job, status=status, started_at=started,
                                         finished_at=started + timedelta(seconds=seconds), **extra)


def test_it_has_the_documented_shape():
    schedules_install()
    dashboard = get_dashboard()
    assert set(dashboard) >= {"timestamp", "health_status", "scheduler_status", "job_metrics", "recent_jobs",
                              "worker", "campaigns", "mailboxes"}
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
    reason = "harvest: schedule not installed (run .venv/bin/python manage.py cam_schedules)"
    assert reason in dashboard["health_reasons"]


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


def test_its_p95_is_the_nearest_rank_of_the_finished_runs_on_every_database():
    for seconds in range(40, 0, -1):
        execution("score", "COMPLETED" if seconds % 5 else "FAILED", minutes_ago=seconds, seconds=seconds)
    factories.JobExecutionFactory(job="score", status="RUNNING", started_at=timezone.now() - timedelta(days=1))
    execution("qualify", "COMPLETED", minutes_ago=3, seconds=0.25)

    metrics = get_dashboard()["job_metrics"]

    # The 38th of 40 (ceil(0.95 × 40)); the run still going is counted but not timed.
    assert (metrics["score"]["runs"], metrics["score"]["running"], metrics["score"]["failed"]) == (41, 1, 8)
    assert (metrics["score"]["p95_duration_seconds"], metrics["score"]["mean_duration_seconds"]) == (38, 20.5)
    assert (metrics["qualify"]["p95_duration_seconds"], metrics["qualify"]["mean_duration_seconds"]) == (0.25, 0.25)
    assert metrics["harvest"] == {"runs": 0, "completed": 0, "failed": 0, "skipped": 0, "running": 0,
                                  "mean_duration_seconds": None, "p95_duration_seconds": None}


def test_it_lists_the_last_ten_runs_newest_first():
    for minutes in range(15):
        execution("qualify", "COMPLETED", minutes_ago=minutes)
    recent = get_dashboard()["recent_jobs"]
    assert len(recent) == 10
    assert recent[0]["started_at"] > recent[-1]["started_at"]


@pytest.mark.parametrize(("executions", "subjects"), [(1, 1), (60, 5)])
def test_it_costs_the_same_queries_however_many_executions_campaigns_and_mailboxes_exist(
        django_assert_num_queries, executions, subjects):
    schedules_install()
    campaigns = factories.CampaignFactory.create_batch(subjects)
    for index in range(executions):
        execution(["harvest", "score", "qualify"][index % 3], ["COMPLETED", "FAILED"][index % 2],
                  minutes_ago=index, campaign=campaigns[0])
    factories.MailboxFactory.create_batch(subjects)
    metrics_compute()
    with django_assert_num_queries(dashboard_queries()):
        dashboard = get_dashboard()
    assert (len(dashboard["campaigns"]), len(dashboard["mailboxes"])) == (subjects, subjects)


def test_it_shows_each_campaign_and_mailbox_with_the_key_rates_of_its_snapshot():
    campaign = factories.CampaignFactory(name="Alpha", status="PAUSED", status_reason="Hard-bounce rate too high")
    mailbox = factories.MailboxFactory(name="Sales box")
    leads = factories.LeadFactory.create_batch(4, campaign=campaign)
    sent = [factories.OutboundEmailFactory(lead=lead, mailbox=mailbox, status="SENT", sent_at=timezone.now())
            for lead in leads]
    factories.InboundEmailFactory(mailbox=mailbox, outbound_email=sent[0], lead=leads[0], category="POSITIVE")
    factories.InboundEmailFactory(mailbox=mailbox, outbound_email=sent[1], lead=leads[1], category="BOUNCE_HARD")
    metrics_compute()
    factories.CampaignFactory(name="Beta, never measured")

    dashboard = get_dashboard()

    alpha, beta = dashboard["campaigns"]
    rates = {"sent": 4, "replies": 1, "replies_rate": 25.0, "positive": 1, "positive_rate": 25.0,
             "bounced_hard": 1, "bounced_hard_rate": 25.0, "complaints": 0, "complaints_rate": 0.0,
             "unsubscribes": 0, "unsubscribes_rate": 0.0}
    assert {key: alpha[key] for key in ("id", "name", "status", "status_reason", "window_days")} == {
        "id": campaign.pk, "name": "Alpha", "status": "PAUSED", "status_reason": "Hard-bounce rate too high",
        "window_days": 7}
    assert (alpha["window"], alpha["all_time"]) == (rates, rates)
    assert alpha["computed_at"] is not None
    assert beta == {"id": beta["id"], "name": "Beta, never measured", "status": "ACTIVE", "status_reason": "",
                    "daily_cap": 200, "effective_daily_cap": 200, "cap_note": "",
                    "computed_at": None, "window_days": None, "window": None, "all_time": None}
    [box] = dashboard["mailboxes"]
    assert (box["id"], box["name"], box["is_active"], box["all_time"]) == (mailbox.pk, "Sales box", True, rates)


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
