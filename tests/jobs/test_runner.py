"""run_job: once per slot, never overlapping, every outcome recorded."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from cam.jobs.registry import UnknownJob, job
from cam.jobs.runner import JobResult, lease_name_for, run_job
from cam.locks import lease_acquire
from cam.models import JobExecution, Lease
from tests import factories
from tests.concurrency import run_at_once

CALLS: list[str] = []


@job("test_counting", description="A job for tests: counts its calls.")
def counting(context):
    CALLS.append(context.execution.execution_id)
    return {"calls": len(CALLS), "campaign": context.campaign.pk if context.campaign else 0}


@job("test_failing")
def failing(context):
    raise RuntimeError("the source is on fire")


GATE = threading.Event()
STARTED = threading.Event()


@job("test_slow")
def slow(context):
    STARTED.set()
    GATE.wait(timeout=20)
    return {"done": 1}


def slot(hour: int) -> datetime:
    # Each test uses its own slot, so no test's run makes another's skip.
    return datetime(2026, 11, 1, hour, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    GATE.clear()
    STARTED.clear()


@pytest.mark.django_db
def test_it_runs_and_records_a_completed_execution_with_counts():
    result = run_job("test_counting", scheduled_for=slot(1))
    assert isinstance(result, JobResult)
    assert (result.status, result.counts["calls"], result.execution_id) == (
        "COMPLETED", 1, "test_counting:global:2026-11-01T01:00:00+00:00")
    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert execution.counts == {"calls": 1, "campaign": 0}
    assert execution.finished_at >= execution.started_at
    assert result.duration_seconds is not None
    assert not Lease.objects.exists()  # released


@pytest.mark.django_db
def test_it_skips_a_second_run_for_the_same_slot_and_says_why():
    first = run_job("test_counting", scheduled_for=slot(2))
    second = run_job("test_counting", scheduled_for=slot(2))
    assert second.status == "SKIPPED"
    assert second.reason == f"This slot already ran as {first.execution_id}."
    assert [first.execution_id] == CALLS
    assert JobExecution.objects.filter(status="SKIPPED", execution_id__startswith=first.execution_id).count() == 1


@pytest.mark.django_db
def test_it_runs_again_under_a_new_id_when_forced():
    first = run_job("test_counting", scheduled_for=slot(3))
    forced = run_job("test_counting", scheduled_for=slot(3), force=True)
    assert forced.status == "COMPLETED"
    assert forced.execution_id != first.execution_id
    assert forced.execution_id.startswith(first.execution_id + ":force-")
    assert len(CALLS) == 2


@pytest.mark.django_db
def test_it_keeps_slots_of_different_campaigns_apart():
    one, two = factories.CampaignFactory(), factories.CampaignFactory()
    assert run_job("test_counting", campaign=one, scheduled_for=slot(4)).status == "COMPLETED"
    assert run_job("test_counting", campaign=two, scheduled_for=slot(4)).status == "COMPLETED"
    assert run_job("test_counting", campaign=one, scheduled_for=slot(4)).status == "SKIPPED"


@pytest.mark.django_db
def test_it_records_a_failure_with_the_error_and_traceback_and_releases_the_lease():
    result = run_job("test_failing", scheduled_for=slot(5))
    assert result.status == "FAILED"
    assert result.error == "RuntimeError: the source is on fire"
    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert "Traceback" in execution.traceback and "the source is on fire" in execution.traceback
    assert not Lease.objects.exists()


@pytest.mark.django_db
def test_it_skips_when_another_run_holds_the_lease():
    lease_acquire(name=lease_name_for(job="test_counting", campaign_id=None), holder="other-host:1")
    result = run_job("test_counting", scheduled_for=slot(6))
    assert result.status == "SKIPPED"
    assert result.reason.startswith("Already running")
    assert CALLS == []
    # The slot was not used up: once the other run is gone, the same slot runs.
    Lease.objects.all().delete()
    assert run_job("test_counting", scheduled_for=slot(6)).status == "COMPLETED"


@pytest.mark.django_db
def test_it_takes_over_a_lease_whose_holder_died():
    name = lease_name_for(job="test_counting", campaign_id=None)
    lease_acquire(name=name, holder="dead-host:1")
    Lease.objects.filter(name=name).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert run_job("test_counting", scheduled_for=slot(7)).status == "COMPLETED"


@pytest.mark.django_db
def test_it_refuses_an_unknown_job_naming_the_known_ones():
    with pytest.raises(UnknownJob) as caught:
        run_job("no_such_job")
    assert "harvest" in str(caught.value) and "qualify" in str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_it_never_runs_the_same_job_twice_at_once_across_threads():
    results: dict[str, JobResult] = {}

    def first():
        try:
            results["first"] = run_job("test_slow", scheduled_for=slot(8))
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert STARTED.wait(timeout=20)
    try:
        results["second"] = run_job("test_slow", scheduled_for=slot(9))
    finally:
        GATE.set()
        thread.join(timeout=30)
    assert results["first"].status == "COMPLETED"
    assert results["second"].status == "SKIPPED"
    assert results["second"].reason.startswith("Already running")


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_slot_exactly_once_when_many_threads_race_for_it():
    results, errors = run_at_once(lambda: run_job("test_counting", scheduled_for=slot(10)), threads=4, timeout=30)
    assert errors == []
    statuses = [result.status for result in results]
    assert sorted(statuses) == ["COMPLETED", "SKIPPED", "SKIPPED", "SKIPPED"]
    assert len(CALLS) == 1
