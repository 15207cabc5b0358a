"""Every admin page opens for a superuser, and a changelist costs the same queries for 1 or 100 rows."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from cam import models
from tests import factories

pytestmark = pytest.mark.django_db

FACTORIES = {
    models.Campaign: factories.CampaignFactory,
    models.SequenceStep: factories.SequenceStepFactory,
    models.LeadSource: factories.LeadSourceFactory,
    models.Lead: factories.LeadFactory,
    models.Suppression: factories.SuppressionFactory,
    models.Mailbox: factories.MailboxFactory,
    models.MailboxFolder: factories.MailboxFolderFactory,
    models.OutboundEmail: factories.OutboundEmailFactory,
    models.InboundEmail: factories.InboundEmailFactory,
    models.JobExecution: factories.JobExecutionFactory,
    models.Lease: factories.LeaseFactory,
    models.WorkerHeartbeat: factories.WorkerHeartbeatFactory,
    models.AlertChannel: factories.AlertChannelFactory,
    models.HumanAlertLog: factories.HumanAlertLogFactory,
    models.HarvestRejection: factories.HarvestRejectionFactory,
    models.LeadEvent: factories.LeadEventFactory,
    models.ProviderEvent: factories.ProviderEventFactory,
    models.CampaignRule: factories.CampaignRuleFactory,
    models.RuleDecision: factories.RuleDecisionFactory,
    models.MetricSnapshot: factories.MetricSnapshotFactory,
    models.CamAPIKey: factories.CamAPIKeyFactory,
}


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_it_registers_every_cam_model_and_the_task_queue():
    registered = set(admin.site._registry)
    assert set(FACTORIES) <= registered
    assert {m._meta.label for m in registered} >= {"django_q.Schedule", "django_q.Success", "django_q.Failure"}


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_it_opens_the_changelist_and_add_page(admin_client, model):
    if model in FACTORIES:
        FACTORIES[model]()
    assert admin_client.get(url(model, "changelist")).status_code == 200
    can_add = admin.site._registry[model].has_add_permission(type("R", (), {"user": admin_client.user})())
    assert admin_client.get(url(model, "add")).status_code == (200 if can_add else 403)


@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m._meta.label)
def test_it_opens_the_change_page(admin_client, model):
    obj = FACTORIES[model]()
    response = admin_client.get(url(model, "change", obj.pk))
    assert response.status_code == 200
    assert escape(str(obj)) in response.content.decode()


@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m._meta.label)
def test_it_lists_one_or_a_hundred_rows_with_the_same_queries(admin_client, model):
    FACTORIES[model]()
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(url(model, "changelist")).status_code == 200
    FACTORIES[model].create_batch(99)
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert len(hundred) == len(one), "\n".join(q["sql"] for q in hundred.captured_queries)
