from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from cam.jobs.registry import job
from cam.jobs.schedules import declared_schedules
from cam.models import JobExecution
from tests import factories

pytestmark = pytest.mark.django_db


@job("test_command_failing")
def failing(context):
    raise ValueError("no such source")


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_runs_a_job_and_prints_status_id_and_counts():
    campaign = factories.CampaignFactory()
    factories.SequenceStepFactory(campaign=campaign, position=1)
    factories.LeadFactory(campaign=campaign, score=90)
    out, _ = run("cam_run_job", "qualify", "--campaign", str(campaign.pk), "--slot", "2026-10-01T03:30Z")
    assert f"qualify: COMPLETED  (qualify:{campaign.pk}:2026-10-01T03:30:00+00:00)" in out
    assert '"enrolled": 1' in out
    assert "did:    1 enrolled, 1 campaign\n" in out


def test_it_exits_zero_on_a_skipped_slot_and_one_on_a_failure():
    run("cam_run_job", "score", "--slot", "2026-10-02T03:00Z")
    out, _ = run("cam_run_job", "score", "--slot", "2026-10-02T03:00Z")
    assert "score: SKIPPED" in out and "reason: This slot already ran" in out

    with pytest.raises(SystemExit) as exited:
        run("cam_run_job", "test_command_failing", "--slot", "2026-10-02T02:00Z")
    assert exited.value.code == 1
    failed = JobExecution.objects.get(execution_id="test_command_failing:global:2026-10-02T02:00:00+00:00")
    assert (failed.status, failed.error) == ("FAILED", "ValueError: no such source")


def test_it_refuses_unknown_jobs_campaigns_slots_and_limits_clearly():
    with pytest.raises(CommandError,
                       match="Unknown job 'nope'; known jobs: domain_check, harvest, inbox, no_reply_timeouts, "):
        run("cam_run_job", "nope")
    with pytest.raises(CommandError, match="No campaign with id 999999"):
        run("cam_run_job", "score", "--campaign", "999999")
    with pytest.raises(CommandError, match="is not an ISO date-time"):
        run("cam_run_job", "score", "--slot", "tomorrow")
    with pytest.raises(CommandError, match="--max-leads must be at least 1"):
        run("cam_run_job", "harvest", "--max-leads", "0")


def test_it_installs_schedules_idempotently():
    out, _ = run("cam_schedules")
    assert "cam: harvest" in out and "daily at 02:00" in out and "created" in out
    out, _ = run("cam_schedules")
    assert "unchanged" in out and "created" not in out
    assert Schedule.objects.filter(name__startswith="cam: ").count() == len(declared_schedules())


def test_it_aligns_the_slot_of_a_scheduled_run_to_the_schedule():
    from cam.jobs.tasks import run_scheduled_job

    summary = run_scheduled_job(job="score", every_seconds=86400, offset_seconds=3 * 3600)
    execution = JobExecution.objects.get(execution_id=summary["execution_id"])
    assert execution.scheduled_for.astimezone(UTC).time() == datetime(2026, 1, 1, 3, 0).time()
    assert execution.trigger == "schedule"
