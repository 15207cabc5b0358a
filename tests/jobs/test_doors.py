"""The same request through every door (the API, ``cam_run_job``, the admin's run-now) gets the same answer:
the job's rules live on its spec and ``job_request`` holds each door to them."""

from __future__ import annotations

from dataclasses import replace
from io import StringIO

import pytest
from django.contrib.admin.sites import site
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import reverse

from cam.jobs import registry
from cam.jobs.registry import UnknownJob
from cam.jobs.request import JobRefused, job_request
from cam.jobs.runner import lease_name_for
from cam.models import Campaign, JobExecution
from tests import factories
from tests.api.conftest import client_with_key

pytestmark = pytest.mark.django_db

SLOT = "2026-11-01T02:00:00Z"
REFUSED, BUSY, ACCEPTED = "refused", "busy", "accepted"


def through_api(job: str, campaign: Campaign | None, params: dict) -> tuple[str, str]:
    body = {"scheduled_for": SLOT, **params}
    if campaign is not None:
        body["campaign"] = campaign.pk
    response = client_with_key().post(reverse("cam-api:job-run", args=[job]), body, format="json")
    answer = response.json()
    if response.status_code in (200, 202):
        return ACCEPTED, ""
    if response.status_code == 409:
        return BUSY, answer["detail"]
    if response.status_code == 404:
        return REFUSED, answer["detail"]
    assert response.status_code == 400, answer
    return REFUSED, " ".join(message for messages in answer.values() for message in messages)


def through_command(job: str, campaign: Campaign | None, params: dict) -> tuple[str, str]:
    args = [job, "--slot", SLOT]
    if campaign is not None:
        args += ["--campaign", str(campaign.pk)]
    if "max_leads" in params:
        args += ["--max-leads", str(params["max_leads"])]
    try:
        call_command("cam_run_job", *args, stdout=StringIO(), stderr=StringIO())
    except CommandError as exc:
        return (BUSY if "already running" in str(exc) else REFUSED), str(exc)
    return ACCEPTED, ""


def through_admin(job: str, campaign: Campaign | None, params: dict) -> tuple[str, str] | None:
    if campaign is None or params:
        return None  # the admin runs a job for the selected campaigns, with no parameters: it cannot ask this
    request = RequestFactory().post("/")
    request._messages = CookieStorage(request)
    site._registry[Campaign]._queue(request, Campaign.objects.filter(pk=campaign.pk), job)
    [message] = list(request._messages)
    if message.level_tag == "success":
        return ACCEPTED, ""
    return (BUSY if "already running" in message.message else REFUSED), message.message


def message_head(answer: tuple[str, str]) -> tuple[str, str]:
    # The API's 404 lists the known jobs in a field of its own; the other doors in the sentence.
    kind, message = answer
    return kind, message.split(";")[0].rstrip(".")


@pytest.mark.parametrize(("job", "with_campaign", "params", "expected"), [
    pytest.param("score", False, {}, (ACCEPTED, ""), id="campaign job without a campaign"),
    pytest.param("inbox", True, {}, (REFUSED, "The job inbox always works on every campaign; it takes no campaign."),
                 id="global job with a campaign"),
    pytest.param("score", True, {"max_leads": 5}, (REFUSED, "Only harvest takes max_leads."),
                 id="parameter the job does not read"),
    pytest.param("nope", True, {}, (REFUSED, "Unknown job 'nope'"), id="unknown job"),
    pytest.param("qualify", True, {"busy": True}, (BUSY, "The job qualify is already running for all campaigns; "
                                                         "try again when it has finished."), id="job running"),
])
def test_every_door_gives_the_same_answer_to_the_same_request(job, with_campaign, params, expected):
    params = dict(params)
    if params.pop("busy", False):
        factories.LeaseFactory(name=lease_name_for(job=job, campaign_id=None), holder="other-host:1")
    campaign = factories.CampaignFactory() if with_campaign else None
    answers = {"api": through_api(job, campaign, params), "command": through_command(job, campaign, params)}
    if (admin := through_admin(job, campaign, params)) is not None:
        answers["admin"] = admin
    if job == "nope":
        answers = {door: message_head(answer) for door, answer in answers.items()}
        expected = message_head(expected)
    assert answers == dict.fromkeys(answers, expected)
    if expected[0] != ACCEPTED:
        assert not JobExecution.objects.exists()  # a refusal, or a busy job, leaves no record


def test_a_queue_only_job_is_refused_in_a_request_by_the_service_as_by_the_api():
    campaign = factories.CampaignFactory()
    with pytest.raises(JobRefused) as refused:
        job_request("harvest", where="request", trigger=JobExecution.Trigger.API, campaign=campaign)
    kind, message = through_api("harvest", campaign, {"wait": True})
    assert (kind, message) == (REFUSED, str(refused.value))
    assert message.startswith("The job harvest cannot run in the request: it can run for longer than a web request")
    # A command runs in the foreground, where no request's timeout can cut it short: it runs there.
    assert through_command("harvest", campaign, {}) == (ACCEPTED, "")
    assert JobExecution.objects.get().status == "COMPLETED"


def test_a_job_that_requires_a_campaign_is_refused_without_one(monkeypatch):
    registry.get_job("score")  # loads the jobs
    monkeypatch.setitem(registry._JOBS, "score", replace(registry._JOBS["score"], campaign="required"))
    with pytest.raises(JobRefused, match=r"The job score works on one campaign; name it\."):
        job_request("score", where="queue", trigger=JobExecution.Trigger.API)
    assert through_api("score", None, {}) == (REFUSED, "The job score works on one campaign; name it.")


def test_an_unknown_job_is_refused_by_the_service_before_anything_else():
    with pytest.raises(UnknownJob):
        job_request("nope", where="request", trigger=JobExecution.Trigger.API, params={"max_leads": 1})
