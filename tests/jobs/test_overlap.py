"""run_job: a run of a job for one campaign and a run of the same job for all campaigns never overlap."""

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import connection
from django.utils import timezone

from cam.jobs.registry import job
from cam.jobs.runner import job_is_running, lease_campaign_id, lease_name_for, run_job, running_lease
from cam.locks import lease_acquire
from cam.models import Lease
from tests import factories
from tests.concurrency import run_at_once

CALLS: list[int | None] = []
ACTIVE: list[int | None] = []
OVERLAPS: list[tuple[int | None, list[int | None]]] = []
LOCK = threading.Lock()
GATE = threading.Event()
STARTED = threading.Event()


@job("test_overlap_counting", description="A job for tests: counts its calls by campaign.")
def counting(context):
    CALLS.append(context.campaign.pk if context.campaign else None)
    return {"calls": len(CALLS)}


@job("test_overlap_slow", description="A job for tests: runs until the test lets it finish.")
def slow(context):
    STARTED.set()
    GATE.wait(timeout=20)
    return {"done": 1}


@job("test_overlap_watched", description="A job for tests: notes any run it overlaps.")
def watched(context):
    scope = context.campaign.pk if context.campaign else None
    with LOCK:
        clashing = [other for other in ACTIVE if other is None or scope is None or other == scope]
        if clashing:
            OVERLAPS.append((scope, clashing))
        ACTIVE.append(scope)
    time.sleep(0.3)
    with LOCK:
        ACTIVE.remove(scope)
    return {}


def slot(hour: int) -> datetime:
    return datetime(2026, 11, 2, hour, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    ACTIVE.clear()
    OVERLAPS.clear()
    GATE.clear()
    STARTED.clear()
    yield
    GATE.set()


def hold(name: str, campaign_id: int | None, *, expired: bool = False) -> str:
    lease = lease_name_for(job=name, campaign_id=campaign_id)
    lease_acquire(name=lease, holder="other-host:1")
    if expired:
        Lease.objects.filter(name=lease).update(expires_at=timezone.now() - timedelta(seconds=1))
    return lease


@pytest.mark.django_db
def test_a_run_for_one_campaign_is_refused_while_the_run_for_all_is_going_on():
    campaign = factories.CampaignFactory()
    held = hold("test_overlap_counting", None)
    result = run_job("test_overlap_counting", campaign=campaign, scheduled_for=slot(1))
    assert (result.status, result.refused_while_running) == ("SKIPPED", True)
    assert result.reason == f"Already running: another run of test_overlap_counting holds the lease {held}."
    assert CALLS == []
    assert list(Lease.objects.values_list("name", flat=True)) == [held]  # its own lease given back
    # The slot was not used up: once the run for all is over, it runs.
    Lease.objects.all().delete()
    assert run_job("test_overlap_counting", campaign=campaign, scheduled_for=slot(1)).status == "COMPLETED"


@pytest.mark.django_db
def test_the_run_for_all_is_refused_while_a_run_for_one_campaign_is_going_on():
    one, two = factories.CampaignFactory(), factories.CampaignFactory()
    held = hold("test_overlap_counting", two.pk)
    result = run_job("test_overlap_counting", scheduled_for=slot(2))
    assert (result.status, result.refused_while_running) == ("SKIPPED", True)
    assert result.reason == f"Already running: another run of test_overlap_counting holds the lease {held}."
    assert list(Lease.objects.values_list("name", flat=True)) == [held]
    # A run for another campaign does not overlap it.
    assert run_job("test_overlap_counting", campaign=one, scheduled_for=slot(2)).status == "COMPLETED"
    assert [one.pk] == CALLS


@pytest.mark.django_db
def test_another_jobs_leases_do_not_hold_a_job():
    campaign = factories.CampaignFactory()
    hold("test_overlap_slow", None)
    hold("test_overlap_slow", campaign.pk)
    Lease.objects.create(name="send:mailbox:1", holder="x", acquired_at=timezone.now(),
                         expires_at=timezone.now() + timedelta(minutes=5))
    assert run_job("test_overlap_counting", scheduled_for=slot(3)).status == "COMPLETED"
    assert run_job("test_overlap_counting", campaign=campaign, scheduled_for=slot(3)).status == "COMPLETED"


@pytest.mark.django_db
def test_an_expired_lease_of_an_overlapping_run_does_not_count():
    campaign = factories.CampaignFactory()
    hold("test_overlap_counting", None, expired=True)
    assert not job_is_running(job="test_overlap_counting", campaign_id=campaign.pk)
    assert run_job("test_overlap_counting", campaign=campaign, scheduled_for=slot(4)).status == "COMPLETED"
    Lease.objects.all().delete()
    hold("test_overlap_counting", campaign.pk, expired=True)
    assert run_job("test_overlap_counting", scheduled_for=slot(4)).status == "COMPLETED"


@pytest.mark.django_db
def test_running_lease_names_the_overlapping_run():
    one, two = factories.CampaignFactory(), factories.CampaignFactory()
    assert running_lease(job="test_overlap_counting", campaign_id=None) is None
    hold("test_overlap_counting", one.pk)
    assert running_lease(job="test_overlap_counting", campaign_id=two.pk) is None
    lease = running_lease(job="test_overlap_counting", campaign_id=None)
    assert lease_campaign_id(lease.name) == one.pk
    hold("test_overlap_counting", None)
    lease = running_lease(job="test_overlap_counting", campaign_id=two.pk)
    assert lease_campaign_id(lease.name) is None
    assert job_is_running(job="test_overlap_counting", campaign_id=one.pk)


@pytest.mark.django_db(transaction=True)
def test_a_campaign_run_is_refused_while_a_run_for_all_goes_on_in_another_thread():
    campaign = factories.CampaignFactory()
    results = {}

    def for_all():
        try:
            results["all"] = run_job("test_overlap_slow", scheduled_for=slot(5))
        finally:
            connection.close()

    thread = threading.Thread(target=for_all)
    thread.start()
    try:
        assert STARTED.wait(timeout=20)
        results["one"] = run_job("test_overlap_slow", campaign=campaign, scheduled_for=slot(5))
    finally:
        GATE.set()
        thread.join(timeout=30)
    assert results["all"].status == "COMPLETED"
    assert (results["one"].status, results["one"].refused_while_running) == ("SKIPPED", True)
    assert not Lease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_runs_for_all_and_for_campaigns_started_together_never_overlap():
    one, two = factories.CampaignFactory(), factories.CampaignFactory()
    scopes = [None, one, None, two, one, None]
    numbers = count()
    lock = threading.Lock()
    completed = 0

    def work():
        with lock:
            number = next(numbers)
        time.sleep(random.uniform(0, 0.05))  # some start while others run, some at the same instant
        return run_job("test_overlap_watched", campaign=scopes[number % len(scopes)],
                       scheduled_for=slot(6 + number))

    for _ in range(3):
        results, errors = run_at_once(work, threads=len(scopes), timeout=30)
        assert errors == []
        assert len(results) == len(scopes)
        assert OVERLAPS == []
        # Every run either ran or was refused because an overlapping run held the job. Runs that take
        # their leases in the same instant may all be refused: never both run.
        assert all(result.status == "COMPLETED" or result.refused_while_running for result in results)
        assert any(result.refused_while_running for result in results)
        assert not Lease.objects.exists()
        completed += sum(result.status == "COMPLETED" for result in results)
    assert completed >= 1
