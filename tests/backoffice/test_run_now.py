"""'Run now' actions queue the job to the task queue; it runs through run_job and is recorded."""

import pytest
from django.urls import reverse
from django_q.conf import Conf

from cam.models import JobExecution, Lead
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def synchronous_queue(monkeypatch):
    # The cluster's worker runs the task in this process as soon as it is queued.
    monkeypatch.setattr(Conf, "SYNC", True)


def test_it_queues_qualify_for_each_selected_campaign_and_records_the_runs(
        admin_client, synchronous_queue, django_capture_on_commit_callbacks):
    one, two = factories.CampaignFactory(min_score=50), factories.CampaignFactory(min_score=50)
    for campaign in (one, two):
        factories.SequenceStepFactory(campaign=campaign, position=1)
        factories.LeadFactory(campaign=campaign, score=80)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:cam_campaign_changelist"),
                                     {"action": "run_qualify", "_selected_action": [one.pk, two.pk]}, follow=True)
    assert "Queued qualify for 2 campaign(s)." in response.content.decode()
    runs = JobExecution.objects.filter(job="qualify").order_by("campaign_id")
    assert [(run.campaign_id, run.status, run.trigger) for run in runs] == [
        (one.pk, "COMPLETED", "admin"), (two.pk, "COMPLETED", "admin")]
    assert set(Lead.objects.values_list("status", flat=True)) == {"IN_SEQUENCE"}


def test_it_queues_nothing_until_the_request_commits(admin_client, django_capture_on_commit_callbacks):
    campaign = factories.CampaignFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(reverse("admin:cam_campaign_changelist"),
                          {"action": "run_score", "_selected_action": [campaign.pk]})
    assert len(callbacks) == 1
    assert not JobExecution.objects.exists()


def test_it_filters_job_executions_by_job_status_and_campaign(admin_client):
    campaign = factories.CampaignFactory()
    factories.JobExecutionFactory(job="harvest", status="FAILED", campaign=campaign, error="SourceError: gone")
    factories.JobExecutionFactory(job="score", status="COMPLETED")
    url = reverse("admin:cam_jobexecution_changelist")
    page = admin_client.get(url, {"job": "harvest", "status": "FAILED", "campaign__id__exact": campaign.pk})
    text = page.content.decode()
    assert "SourceError: gone" in text
    assert page.context["cl"].result_count == 1
