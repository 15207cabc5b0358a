"""/api/cam/jobs: run a job now or queue it, and read the executions."""

import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import Event, Value
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ, Success
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.queues import Queue
from django_q.worker import worker
from rest_framework.test import APIClient

# Imported before the test jobs below register, so its schema enum of job names lists CAM's jobs only.
from cam.api import jobs as jobs_api
from cam.api.throttling import CamRateThrottle
from cam.jobs.registry import job
from cam.jobs.runner import execution_id_for, lease_name_for, run_job
from cam.models import CamAPIKey, JobExecution, Lease, WorkerHeartbeat
from tests import factories
from tests.concurrency import run_at_once

GATE = threading.Event()
STARTED = threading.Event()


# The test jobs that run in the request are marked quick enough for it, like score or qualify.
@job("test_api_slow", description="A job for tests: runs until the test lets it finish.", inline_allowed=True)
def slow(context):
    STARTED.set()
    GATE.wait(timeout=20)
    return {"done": 1}


@job("test_api_failing", inline_allowed=True)
def failing(context):
    raise RuntimeError("the source is on fire")


@job("test_api_queued_only", description="A job for tests: not in the list of jobs that may run in a request.")
def queued_only(context):
    return {}


@pytest.fixture(autouse=True)
def _reset():
    GATE.clear()
    STARTED.clear()
    yield
    GATE.set()


def run_url(name: str) -> str:
    return reverse("cam-api:job-run", args=[name])


def detail_url(execution_id: str) -> str:
    return f"/api/cam/jobs/executions/{quote(execution_id, safe='')}/"


LIST_URL = "/api/cam/jobs/executions/"
SLOT = "2026-11-01T02:00:00Z"


def slot_id(name: str, campaign_id=None, slot: str = SLOT) -> str:
    return execution_id_for(job=name, campaign_id=campaign_id,
                            slot=datetime.fromisoformat(slot.replace("Z", "+00:00")))


def run_queue(broker) -> None:
    """What a running qcluster does with queued tasks: push them to a worker, run them, store the results."""
    task_queue, result_queue, stop = Queue(), Queue(), Event()
    stop.set()
    pusher(task_queue, stop, broker=broker)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("b", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)


# --- POST jobs/{name}/run, wait=true -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_runs_a_job_in_the_request_and_answers_the_execution_record(api):
    campaign = factories.CampaignFactory()
    response = api.post(run_url("score"), {"campaign": campaign.pk, "scheduled_for": SLOT, "wait": True},
                        format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["execution_id"] == slot_id("score", campaign.pk)
    assert (body["job"], body["campaign"], body["status"], body["trigger"]) == (
        "score", campaign.pk, "COMPLETED", "api")
    assert body["counts"]["campaigns"] == 1
    assert (body["error"], body["reason"]) == ("", "")
    assert body["scheduled_for"] == "2026-11-01T02:00:00Z"
    assert body["finished_at"] and body["started_at"] and body["duration_seconds"] >= 0
    assert set(body) == {"execution_id", "job", "campaign", "scheduled_for", "status", "trigger", "counts", "error",
                         "reason", "started_at", "finished_at", "duration_seconds"}
    execution = JobExecution.objects.get(execution_id=body["execution_id"])
    assert (execution.status, execution.trigger, execution.campaign_id) == ("COMPLETED", "api", campaign.pk)


@pytest.mark.django_db
def test_it_answers_a_second_run_of_the_same_slot_with_the_skipped_record(api):
    first = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json").json()
    second = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json")
    assert second.status_code == 200
    body = second.json()
    assert body["status"] == "SKIPPED"
    assert body["reason"] == f"This slot already ran as {first['execution_id']}."
    assert body["execution_id"].startswith(first["execution_id"] + ":skipped-")
    # Queued or not, the answer for a slot that already ran is the same, at once.
    queued = api.post(run_url("qualify"), {"scheduled_for": SLOT}, format="json")
    assert (queued.status_code, queued.json()["status"]) == (200, "SKIPPED")
    assert JobExecution.objects.filter(job="qualify", status="COMPLETED").count() == 1


@pytest.mark.django_db
def test_it_runs_a_slot_again_when_forced(api):
    first = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json").json()
    forced = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True, "force": True}, format="json")
    assert forced.status_code == 200
    assert forced.json()["status"] == "COMPLETED"
    assert forced.json()["execution_id"].startswith(first["execution_id"] + ":force-")


@pytest.mark.django_db
def test_it_answers_a_failed_run_with_its_error(api):
    response = api.post(run_url("test_api_failing"), {"wait": True}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == ("FAILED", "RuntimeError: the source is on fire")


@pytest.mark.django_db(transaction=True)
def test_it_passes_max_leads_to_harvest(api):
    campaign = factories.CampaignFactory()
    response = api.post(run_url("harvest"), {"campaign": campaign.pk, "max_leads": 5}, format="json")
    assert response.status_code == 202, response.json()
    run_queue(get_broker())
    polled = api.get(response["Location"]).json()
    assert polled["status"] == "COMPLETED"
    assert JobExecution.objects.get(execution_id=polled["execution_id"]).params == {"max_leads": 5}


@pytest.mark.django_db
def test_it_answers_404_listing_the_known_jobs_for_an_unknown_name(api):
    response = api.post(run_url("no_such_job"), {"wait": True}, format="json")
    assert response.status_code == 404
    body = response.json()
    assert body["detail"] == "Unknown job 'no_such_job'."
    assert {"harvest", "score", "qualify", "outreach", "worker_cycle", "no_reply_timeouts"} <= set(body["known_jobs"])
    assert not JobExecution.objects.exists()


# --- 409: the job is running ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_409_with_the_running_execution_while_another_holder_has_the_lease(api):
    campaign = factories.CampaignFactory()
    running = factories.JobExecutionFactory(execution_id="score:running", job="score", campaign=campaign,
                                            status="RUNNING", finished_at=None)
    factories.LeaseFactory(name=lease_name_for(job="score", campaign_id=campaign.pk), holder="other-host:1")
    for wait in (True, False):
        response = api.post(run_url("score"), {"campaign": campaign.pk, "scheduled_for": SLOT, "wait": wait},
                            format="json")
        assert response.status_code == 409, response.json()
        body = response.json()
        assert body["detail"] == (f"The job score is already running for campaign {campaign.pk}; "
                                  "try again when it has finished.")
        assert (body["running"]["execution_id"], body["running"]["status"]) == (running.execution_id, "RUNNING")
    assert list(JobExecution.objects.values_list("execution_id", flat=True)) == [running.execution_id]
    assert not OrmQ.objects.exists()
    # The same job for another campaign does not overlap it: it runs.
    other = api.post(run_url("score"), {"campaign": factories.CampaignFactory().pk, "scheduled_for": SLOT,
                                        "wait": True}, format="json")
    assert (other.status_code, other.json()["status"]) == (200, "COMPLETED")
    # The same job for all campaigns would work on this campaign too: 409, naming the campaign's run.
    for wait in (True, False):
        response = api.post(run_url("score"), {"scheduled_for": SLOT, "wait": wait}, format="json")
        assert response.status_code == 409, response.json()
        assert response.json()["detail"] == (f"The job score is already running for campaign {campaign.pk}; "
                                             "try again when it has finished.")
        assert response.json()["running"]["execution_id"] == running.execution_id
    assert not JobExecution.objects.filter(job="score", campaign=None).exists()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["score", "harvest"])
def test_it_answers_409_for_a_campaign_while_the_job_runs_for_all_campaigns(api, name):
    campaign = factories.CampaignFactory()
    running = factories.JobExecutionFactory(execution_id=f"{name}:running", job=name, campaign=None,
                                            status="RUNNING", finished_at=None)
    factories.LeaseFactory(name=lease_name_for(job=name, campaign_id=None), holder="other-host:1")
    for wait in (True, False) if name in jobs_api.WAIT_JOBS else (False,):
        response = api.post(run_url(name), {"campaign": campaign.pk, "scheduled_for": SLOT, "wait": wait},
                            format="json")
        assert response.status_code == 409, response.json()
        assert response.json()["detail"] == (f"The job {name} is already running for all campaigns; "
                                             "try again when it has finished.")
        assert response.json()["running"]["execution_id"] == running.execution_id
    assert list(JobExecution.objects.values_list("execution_id", flat=True)) == [running.execution_id]
    assert not OrmQ.objects.exists()
    # Another job is not held by it.
    other = api.post(run_url("qualify"), {"campaign": campaign.pk, "wait": True}, format="json")
    assert (other.status_code, other.json()["status"]) == (200, "COMPLETED")


@pytest.mark.django_db
def test_it_answers_409_for_all_campaigns_while_the_job_runs_for_one(api):
    one = factories.CampaignFactory()
    factories.LeaseFactory(name=lease_name_for(job="harvest", campaign_id=one.pk), holder="other-host:1")
    response = api.post(run_url("harvest"), {"scheduled_for": SLOT}, format="json")
    assert response.status_code == 409, response.json()
    assert response.json()["detail"].startswith(f"The job harvest is already running for campaign {one.pk};")
    assert response.json()["running"] is None  # the lease is there, its record not (yet)
    assert not OrmQ.objects.exists()
    assert not JobExecution.objects.exists()


@pytest.mark.django_db
def test_it_checks_for_overlapping_runs_in_a_fixed_number_of_queries(api):
    campaigns = factories.CampaignFactory.create_batch(3)

    def queries_for_a_run_for_all() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.post(run_url("score"), {"scheduled_for": SLOT, "wait": True}, format="json")
        assert response.status_code == 409
        return len(queries)

    factories.LeaseFactory(name=lease_name_for(job="score", campaign_id=campaigns[0].pk))
    queries_for_a_run_for_all()  # warm up: the key's first use and the throttle's cache row
    with_one = queries_for_a_run_for_all()
    for campaign in campaigns[1:]:
        factories.LeaseFactory(name=lease_name_for(job="score", campaign_id=campaign.pk))
    assert queries_for_a_run_for_all() == with_one


@pytest.mark.django_db
def test_it_runs_when_the_overlapping_run_for_all_campaigns_died(api):
    campaign = factories.CampaignFactory()
    factories.LeaseFactory(name=lease_name_for(job="score", campaign_id=None), holder="dead-host:1",
                           expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post(run_url("score"), {"campaign": campaign.pk, "wait": True}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "COMPLETED")


@pytest.mark.django_db
def test_it_answers_a_slot_that_already_ran_with_skipped_even_while_the_job_runs(api):
    factories.JobExecutionFactory(execution_id=slot_id("qualify"), job="qualify", status="COMPLETED")
    factories.LeaseFactory(name=lease_name_for(job="qualify", campaign_id=None), holder="other-host:1")
    response = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "SKIPPED")
    assert response.json()["reason"].startswith("This slot already ran")


@pytest.mark.django_db
def test_it_runs_when_the_lease_holder_died(api):
    factories.LeaseFactory(name=lease_name_for(job="qualify", campaign_id=None), holder="dead-host:1",
                           expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post(run_url("qualify"), {"wait": True}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "COMPLETED")


@pytest.mark.django_db(transaction=True)
def test_it_answers_409_while_a_run_in_another_thread_holds_the_job(api):
    results = {}

    def first():
        try:
            results["first"] = run_job("test_api_slow", scheduled_for=datetime(2026, 11, 1, 1, tzinfo=UTC))
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert STARTED.wait(timeout=20)
        response = api.post(run_url("test_api_slow"), {"scheduled_for": SLOT, "wait": True}, format="json")
    finally:
        GATE.set()
        thread.join(timeout=30)
    assert response.status_code == 409
    assert response.json()["running"]["execution_id"] == results["first"].execution_id
    assert results["first"].status == "COMPLETED"
    # Once it has finished, the same request runs.
    again = api.post(run_url("test_api_slow"), {"scheduled_for": SLOT, "wait": True}, format="json")
    assert (again.status_code, again.json()["status"]) == (200, "COMPLETED")


# --- Queued runs -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_queues_a_run_to_the_cluster_and_the_poll_shows_its_outcome(api):
    campaign = factories.CampaignFactory()
    response = api.post(run_url("score"), {"campaign": campaign.pk, "scheduled_for": SLOT}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    expected_id = slot_id("score", campaign.pk)
    assert body == {"execution_id": expected_id, "job": "score", "campaign": campaign.pk,
                    "scheduled_for": "2026-11-01T02:00:00Z", "status": "QUEUED",
                    "url": "http://testserver" + reverse("cam-api:job-execution-detail", args=[expected_id])}
    assert response["Location"] == body["url"]
    assert OrmQ.objects.filter(key="cam").count() == 1  # in django-q2's queue, not run yet
    assert api.get(body["url"]).status_code == 404

    run_queue(get_broker())

    polled = api.get(body["url"])
    assert polled.status_code == 200
    assert (polled.json()["status"], polled.json()["trigger"], polled.json()["campaign"]) == (
        "COMPLETED", "api", campaign.pk)
    assert Success.objects.get(group="cam: score").result["execution_id"] == expected_id


@pytest.mark.django_db(transaction=True)
def test_it_queues_a_forced_run_under_the_id_it_answered(api):
    api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json")
    response = api.post(run_url("qualify"), {"scheduled_for": SLOT, "force": True, "max_leads": None},
                        format="json")
    assert response.status_code == 202
    execution_id = response.json()["execution_id"]
    assert execution_id.startswith(slot_id("qualify") + ":force-")
    run_queue(get_broker())
    polled = api.get(response["Location"])
    assert (polled.status_code, polled.json()["execution_id"], polled.json()["status"]) == (
        200, execution_id, "COMPLETED")


@pytest.mark.django_db(transaction=True)
def test_it_shows_a_queued_run_refused_in_the_cluster_because_the_job_was_running(api):
    response = api.post(run_url("qualify"), {"scheduled_for": SLOT}, format="json")
    assert response.status_code == 202
    # Another run took the job between the request and the cluster.
    factories.LeaseFactory(name=lease_name_for(job="qualify", campaign_id=None), holder="other-host:1")
    run_queue(get_broker())
    polled = api.get(response["Location"])
    assert polled.status_code == 200
    assert (polled.json()["status"], polled.json()["job"]) == ("SKIPPED", "qualify")
    assert polled.json()["reason"].startswith("Already running")
    # The slot was not used up (nor left reserved): it runs once the other run is gone.
    assert list(Lease.objects.values_list("name", flat=True)) == [lease_name_for(job="qualify", campaign_id=None)]
    Lease.objects.all().delete()
    again = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": True}, format="json")
    assert (again.json()["execution_id"], again.json()["status"]) == (response.json()["execution_id"], "COMPLETED")
    assert api.get(response["Location"]).json()["status"] == "COMPLETED"


@pytest.mark.django_db(transaction=True)
def test_it_answers_a_second_request_for_a_queued_slot_with_a_skipped_record_and_queues_nothing(api):
    first = api.post(run_url("qualify"), {"scheduled_for": SLOT}, format="json")
    assert first.status_code == 202
    queued_id = first.json()["execution_id"]
    for wait in (False, True):
        second = api.post(run_url("qualify"), {"scheduled_for": SLOT, "wait": wait}, format="json")
        assert second.status_code == 200, second.json()
        body = second.json()
        assert (body["status"], body["job"], body["trigger"]) == ("SKIPPED", "qualify", "api")
        assert body["reason"] == (f"Already queued: the run of this slot is queued as {queued_id}; "
                                  "poll that execution for its outcome.")
        assert body["execution_id"].startswith(queued_id + ":skipped-")
    assert OrmQ.objects.count() == 1
    # The refusals say nothing about the queued run: its url still waits for the cluster.
    assert api.get(first["Location"]).status_code == 404

    run_queue(get_broker())

    assert api.get(first["Location"]).json()["status"] == "COMPLETED"
    assert not Lease.objects.exists()  # the reservation was given back with the run
    third = api.post(run_url("qualify"), {"scheduled_for": SLOT}, format="json")
    assert (third.status_code, third.json()["reason"]) == (200, f"This slot already ran as {queued_id}.")
    # Another slot, or a forced run of this one, is a run of its own.
    other = api.post(run_url("qualify"), {"scheduled_for": "2026-11-01T03:00:00Z"}, format="json")
    forced = api.post(run_url("qualify"), {"scheduled_for": SLOT, "force": True}, format="json")
    assert (other.status_code, forced.status_code) == (202, 202)


@pytest.mark.django_db(transaction=True)
def test_it_queues_a_slot_once_when_two_requests_come_at_once():
    # Each thread its own client (the key is committed, so every thread's connection sees it).
    _, key = CamAPIKey.objects.create_key(name="race")

    def request():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        response = client.post(run_url("qualify"), {"scheduled_for": SLOT}, format="json")
        return response.status_code, response.json()

    results, errors = run_at_once(request, threads=2, timeout=30)
    assert errors == []
    results.sort(key=lambda result: result[0])
    assert [status for status, _ in results] == [200, 202]
    (_, skipped), (_, queued) = results
    assert skipped["status"] == "SKIPPED"
    assert skipped["reason"].startswith(f"Already queued: the run of this slot is queued as {queued['execution_id']};")
    assert OrmQ.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["harvest", "outreach", "inbox", "worker_cycle", "test_api_queued_only"])
def test_it_refuses_to_wait_for_a_job_that_is_not_quick(api, name):
    response = api.post(run_url(name), {"wait": True}, format="json")
    assert response.status_code == 400, response.json()
    [message] = response.json()["wait"]
    assert message.startswith(f"The job {name} cannot run in the request: ")
    assert "Queue it instead" in message
    if name == "worker_cycle":
        assert "heartbeat" in message
    assert not JobExecution.objects.exists()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_queues_the_worker_cycle_so_only_the_cluster_writes_a_heartbeat(api):
    response = api.post(run_url("worker_cycle"), {}, format="json")
    assert response.status_code == 202
    assert not WorkerHeartbeat.objects.exists()  # the web process wrote none
    assert OrmQ.objects.count() == 1


# --- POST: auth and bad input ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_runs_without_a_key_or_with_a_read_only_key(anon_api, read_api):
    assert anon_api.post(run_url("score"), {"wait": True}, format="json").status_code == 401
    response = read_api.post(run_url("score"), {"wait": True}, format="json")
    assert response.status_code == 403
    assert not JobExecution.objects.exists()


@pytest.mark.django_db
def test_it_counts_job_runs_in_their_own_throttle_scope(api, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "cam_jobs": "1/min"}}
    assert api.post(run_url("qualify"), {"wait": True}, format="json").status_code == 200
    refused = api.post(run_url("qualify"), {"wait": True}, format="json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert api.get(LIST_URL).status_code == 200  # reads are counted apart
    assert JobExecution.objects.count() == 1


@pytest.mark.django_db
def test_it_lets_staff_run_a_job_with_a_session(admin_client):
    response = admin_client.post(run_url("qualify"), {"wait": True}, content_type="application/json")
    assert (response.status_code, response.json()["status"]) == (200, "COMPLETED")


@pytest.mark.django_db
@pytest.mark.parametrize(("job_name", "body", "field"), [
    ("score", {"campaign": "x"}, "campaign"),
    ("score", {"campaign": 10**30}, "campaign"),
    ("score", {"campaign": 0}, "campaign"),
    ("score", {"campaign": 999_999}, "campaign"),
    ("inbox", {"campaign": "__campaign__"}, "campaign"),
    ("harvest", {"max_leads": 0}, "max_leads"),
    ("harvest", {"max_leads": 10**9}, "max_leads"),
    ("harvest", {"max_leads": "many"}, "max_leads"),
    ("score", {"max_leads": 5}, "max_leads"),
    ("score", {"scheduled_for": "yesterday"}, "scheduled_for"),
    ("score", {"scheduled_for": "0001-01-01T00:00:00Z"}, "scheduled_for"),
    ("score", {"scheduled_for": "9999-12-31T23:59:59-05:00"}, "scheduled_for"),
    ("score", {"force": "perhaps"}, "force"),
    ("score", {"wait": [1]}, "wait"),
    ("score", {"max_lead": 5}, "max_lead"),
])
def test_it_refuses_bad_input_naming_the_field(api, job_name, body, field):
    campaign = factories.CampaignFactory()
    body = {key: campaign.pk if value == "__campaign__" else value for key, value in body.items()}
    response = api.post(run_url(job_name), body, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field]
    assert not JobExecution.objects.exists()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_body_that_is_not_an_object(api):
    response = api.post(run_url("score"), [1, 2], format="json")
    assert response.status_code == 400
    malformed = api.post(run_url("score"), "{not json", content_type="application/json")
    assert malformed.status_code == 400


# --- GET jobs/executions ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_executions_with_a_fixed_number_of_queries(api, monkeypatch):
    # One throttle window for the whole test: a new window's first request creates its counter (more
    # queries), which would otherwise happen whenever the test runs across a minute's end.
    now = time.time()
    monkeypatch.setattr(CamRateThrottle, "timer", staticmethod(lambda: now))
    campaign = factories.CampaignFactory()

    def queries_for_the_list(count: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(LIST_URL)
        assert response.status_code == 200
        assert response.json()["count"] == count
        assert response.json()["results"][0]["campaign"] == campaign.pk
        return len(queries)

    factories.JobExecutionFactory(campaign=campaign, counts={"created": 2})
    queries_for_the_list(1)  # warm up: the key's first use and the throttle's cache row
    with_one = queries_for_the_list(1)
    factories.JobExecutionFactory.create_batch(2, campaign=campaign, counts={"created": 2})
    # The key, the throttle's cache, the count and the page: none of them per execution.
    assert queries_for_the_list(3) == with_one


@pytest.mark.django_db
def test_it_filters_executions(api):
    one, two = factories.CampaignFactory(), factories.CampaignFactory()
    now = timezone.now()
    early = factories.JobExecutionFactory(job="harvest", campaign=one, status="FAILED", trigger="api",
                                          started_at=now - timedelta(days=2))
    late = factories.JobExecutionFactory(job="score", campaign=two, status="COMPLETED", trigger="schedule",
                                         started_at=now)

    def ids(**query):
        response = api.get(LIST_URL, query)
        assert response.status_code == 200, response.json()
        return [item["execution_id"] for item in response.json()["results"]]

    assert ids() == [late.execution_id, early.execution_id]
    assert ids(job="harvest") == [early.execution_id]
    assert ids(campaign=two.pk) == [late.execution_id]
    assert ids(status="FAILED") == [early.execution_id]
    assert ids(trigger="schedule") == [late.execution_id]
    assert ids(started_after=(now - timedelta(days=1)).isoformat()) == [late.execution_id]
    assert ids(started_before=(now - timedelta(days=1)).isoformat()) == [early.execution_id]
    assert ids(campaign=two.pk, status="FAILED") == []
    page = api.get(LIST_URL, {"page_size": 1, "page": 2}).json()
    assert (page["count"], [item["execution_id"] for item in page["results"]]) == (2, [early.execution_id])
    assert api.get(LIST_URL, {"page": str(2**63 - 1)}).status_code == 404
    # Paged as every list is: a larger page size asks for the most, and "last" is the last page.
    assert api.get(LIST_URL, {"page_size": 1000}).json()["count"] == 2
    last = api.get(LIST_URL, {"page_size": 1, "page": "last"}).json()
    assert [item["execution_id"] for item in last["results"]] == [early.execution_id]


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "field"), [
    ({"job": "no_such_job"}, "job"),
    ({"campaign": "one"}, "campaign"),
    ({"campaign": str(10**30)}, "campaign"),
    ({"status": "DONE"}, "status"),
    ({"trigger": "cron"}, "trigger"),
    ({"started_after": "last week"}, "started_after"),
    ({"started_after": "2026-11-02T00:00Z", "started_before": "2026-11-01T00:00Z"}, "started_before"),
    ({"page_size": "0"}, "page_size"),
    ({"stauts": "FAILED"}, "stauts"),
])
def test_it_refuses_bad_filters_naming_the_parameter(api, query, field):
    response = api.get(LIST_URL, query)
    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field]


@pytest.mark.django_db
def test_it_refuses_the_list_and_the_detail_without_a_key(anon_api, read_api):
    execution = factories.JobExecutionFactory()
    assert anon_api.get(LIST_URL).status_code == 401
    assert anon_api.get(detail_url(execution.execution_id)).status_code == 401
    assert read_api.get(LIST_URL).status_code == 200  # reading needs any key


# --- GET jobs/executions/{execution_id} ----------------------------------------------------------------


@pytest.mark.django_db
def test_it_reads_one_execution_by_its_id(read_api):
    execution = factories.JobExecutionFactory(execution_id=slot_id("harvest"), counts={"created": 3},
                                              finished_at=timezone.now())
    response = read_api.get(detail_url(execution.execution_id))
    assert response.status_code == 200
    assert (response.json()["execution_id"], response.json()["counts"]) == (execution.execution_id, {"created": 3})


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_execution(api):
    response = api.get(detail_url("harvest:global:nope"))
    assert response.status_code == 404
    assert response.json() == {"detail": "No job execution 'harvest:global:nope'."}
    # A NUL in the path never reaches the query (PostgreSQL refuses it): cam.middleware answers first.
    refused = api.get(detail_url("harvest\x00global"))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("The request holds a NUL character")
