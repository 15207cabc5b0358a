"""A staff session needs the Django permission a request calls for, as in the admin: view (or change) to
read, add to create, change to update or act on one object, delete to delete. Superusers have them all;
API keys are not concerned (read-only or full, as before)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from cam.api.auth import Public
from cam.models import Campaign, JobExecution, SendingDomain
from tests import factories
from tests.api.conftest import client_with_key

pytestmark = pytest.mark.django_db

API = "/api/cam"


@dataclass(frozen=True)
class Case:
    """One request: what it needs, and what it answers once the user has it."""

    name: str
    method: str
    url: Callable[[dict], str]
    permission: str
    ok: int
    body: Callable[[dict], dict] | None = None


def world() -> dict:
    mailbox = factories.MailboxFactory()
    active = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    paused = factories.CampaignFactory(status=Campaign.Status.PAUSED)
    draft = factories.CampaignFactory(status=Campaign.Status.DRAFT)
    draft.mailboxes.add(mailbox)
    factories.SequenceStepFactory(campaign=draft, position=1)
    step = factories.SequenceStepFactory(campaign=active, position=1)
    lead = factories.LeadFactory(campaign=active)
    reply = factories.InboundEmailFactory(lead=lead, category="POSITIVE")
    held = factories.InboundEmailFactory(lead=lead, category="BOUNCE_HARD", confirmation="NEEDED")
    return {"active": active, "paused": paused, "draft": draft, "step": step, "lead": lead, "reply": reply,
            "held": held,
            "suppression": factories.SuppressionFactory(), "execution": factories.JobExecutionFactory(),
            "worker": factories.WorkerHeartbeatFactory(), "alert": factories.HumanAlertLogFactory(),
            "domain": SendingDomain.objects.create(domain="held.test", holds_mail=True),
            "overridden": SendingDomain.objects.create(domain="overridden.test", holds_mail=True,
                                                       override_reason="Fixed tomorrow", override_at=timezone.now())}


NEW_CAMPAIGN = {"name": "Logistics leaders", "icp_industries": ["logistics"], "send_days": [1, 2, 3],
                "send_start_hour": 8, "send_end_hour": 16, "timezone": "Europe/Berlin", "daily_cap": 80}
NEW_STEP = {"position": 2, "delay_days": 3, "subject_template": "", "body_template": "Just following up."}

CASES = [
    # campaigns
    Case("campaign list", "get", lambda w: f"{API}/campaigns/", "cam.view_campaign", 200),
    Case("campaign read", "get", lambda w: f"{API}/campaigns/{w['active'].pk}/", "cam.view_campaign", 200),
    Case("campaign metrics", "get", lambda w: f"{API}/campaigns/{w['active'].pk}/metrics/", "cam.view_campaign",
         200),
    Case("campaign create", "post", lambda w: f"{API}/campaigns/", "cam.add_campaign", 201,
         lambda w: NEW_CAMPAIGN),
    Case("campaign update", "patch", lambda w: f"{API}/campaigns/{w['active'].pk}/", "cam.change_campaign", 200,
         lambda w: {"daily_cap": 10}),
    Case("campaign pause", "post", lambda w: f"{API}/campaigns/{w['active'].pk}/pause/", "cam.change_campaign", 200,
         lambda w: {}),
    Case("campaign resume", "post", lambda w: f"{API}/campaigns/{w['paused'].pk}/resume/", "cam.change_campaign",
         200, lambda w: {}),
    Case("campaign activate", "post", lambda w: f"{API}/campaigns/{w['draft'].pk}/activate/",
         "cam.change_campaign", 200, lambda w: {}),
    # sequence steps
    Case("step list", "get", lambda w: f"{API}/campaigns/{w['active'].pk}/steps/", "cam.view_sequencestep", 200),
    Case("step create", "post", lambda w: f"{API}/campaigns/{w['active'].pk}/steps/", "cam.add_sequencestep", 201,
         lambda w: NEW_STEP),
    Case("step update", "patch", lambda w: f"{API}/campaigns/{w['active'].pk}/steps/{w['step'].pk}/",
         "cam.change_sequencestep", 200, lambda w: {"delay_days": 4}),
    Case("step delete", "delete", lambda w: f"{API}/campaigns/{w['active'].pk}/steps/{w['step'].pk}/",
         "cam.delete_sequencestep", 204),
    # leads
    Case("lead list", "get", lambda w: f"{API}/leads/", "cam.view_lead", 200),
    Case("lead read", "get", lambda w: f"{API}/leads/{w['lead'].pk}/", "cam.view_lead", 200),
    Case("lead create", "post", lambda w: f"{API}/leads/", "cam.add_lead", 201,
         lambda w: {"campaign": w["active"].pk, "email": "anna@brightlane.example.com"}),
    Case("lead bulk", "post", lambda w: f"{API}/leads/bulk/", "cam.add_lead", 200,
         lambda w: {"leads": [{"campaign": w["active"].pk, "email": "jo@brightlane.example.com"}]}),
    Case("lead status", "post", lambda w: f"{API}/leads/{w['lead'].pk}/status/", "cam.change_lead", 200,
         lambda w: {"status": "DISQUALIFIED"}),
    # replies
    Case("reply list", "get", lambda w: f"{API}/replies/", "cam.view_inboundemail", 200),
    Case("reply read", "get", lambda w: f"{API}/replies/{w['reply'].pk}/", "cam.view_inboundemail", 200),
    Case("reply reclassify", "post", lambda w: f"{API}/replies/{w['reply'].pk}/reclassify/",
         "cam.change_inboundemail", 200, lambda w: {"category": "NEGATIVE"}),
    Case("reply confirm", "post", lambda w: f"{API}/replies/{w['held'].pk}/confirm/", "cam.change_inboundemail",
         200, lambda w: {}),
    Case("reply dismiss", "post", lambda w: f"{API}/replies/{w['held'].pk}/dismiss/", "cam.change_inboundemail",
         200, lambda w: {}),
    Case("reply handled", "post", lambda w: f"{API}/replies/{w['reply'].pk}/handled/", "cam.change_inboundemail",
         200, lambda w: {}),
    Case("reply assign", "post", lambda w: f"{API}/replies/{w['reply'].pk}/assign/", "cam.change_inboundemail",
         200, lambda w: {"assigned_to": None}),
    # suppressions
    Case("suppression list", "get", lambda w: f"{API}/suppressions/", "cam.view_suppression", 200),
    Case("suppression create", "post", lambda w: f"{API}/suppressions/", "cam.add_suppression", 201,
         lambda w: {"domain": "competitor.test", "reason": "MANUAL"}),
    Case("suppression delete", "delete", lambda w: f"{API}/suppressions/{w['suppression'].pk}/",
         "cam.delete_suppression", 204),
    # monitoring
    Case("metrics", "get", lambda w: f"{API}/metrics/", "cam.view_jobexecution", 200),
    Case("worker", "get", lambda w: f"{API}/worker/", "cam.view_workerheartbeat", 200),
    Case("alert list", "get", lambda w: f"{API}/alerts/", "cam.view_humanalertlog", 200),
    Case("alert read", "get", lambda w: f"{API}/alerts/{w['alert'].pk}/", "cam.view_humanalertlog", 200),
    # jobs
    Case("job run", "post", lambda w: f"{API}/jobs/score/run/", "cam.add_jobexecution", 200,
         lambda w: {"wait": True}),
    # sending domains (check asks DNS: tests/domains/test_api.py)
    Case("sending domain list", "get", lambda w: f"{API}/sending-domains/", "cam.view_sendingdomain", 200),
    Case("sending domain read", "get", lambda w: f"{API}/sending-domains/{w['domain'].pk}/",
         "cam.view_sendingdomain", 200),
    Case("sending domain override", "post", lambda w: f"{API}/sending-domains/{w['domain'].pk}/override/",
         "cam.change_sendingdomain", 200, lambda w: {"reason": "DMARC goes live on Monday"}),
    Case("sending domain hold", "post", lambda w: f"{API}/sending-domains/{w['overridden'].pk}/hold/",
         "cam.change_sendingdomain", 200, lambda w: {}),
    Case("execution list", "get", lambda w: f"{API}/jobs/executions/", "cam.view_jobexecution", 200),
    Case("execution read", "get", lambda w: f"{API}/jobs/executions/{w['execution'].execution_id}/",
         "cam.view_jobexecution", 200),
]


def grant(user, *perms: str) -> None:
    for perm in perms:
        app_label, _, codename = perm.partition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def session(user) -> APIClient:
    # A fresh session per client: the user (and the permissions cached on it) is loaded for each request.
    client = APIClient()
    client.force_login(user)
    return client


def send(client: APIClient, case: Case, w: dict):
    body = case.body(w) if case.body else None
    return getattr(client, case.method)(case.url(w), body, format="json") if body is not None else \
        getattr(client, case.method)(case.url(w))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_staff_session_needs_the_matching_permission(case):
    w = world()
    user = factories.UserFactory(is_staff=True)
    # Every other permission of the model is not enough.
    app_label, _, codename = case.permission.partition(".")
    model = codename.split("_", 1)[1]
    others = [f"{app_label}.{action}_{model}" for action in ("view", "add", "change", "delete")
              if f"{action}_{model}" != codename and not (codename.startswith("view_") and action == "change")]
    grant(user, *others)

    refused = send(session(user), case, w)
    assert refused.status_code == 403, refused.content
    assert case.permission in refused.json()["detail"]

    grant(user, case.permission)
    allowed = send(session(user), case, w)
    assert allowed.status_code == case.ok, allowed.content


def test_a_staff_session_without_permissions_changes_nothing():
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    client = session(factories.UserFactory(is_staff=True))
    response = client.post(f"{API}/campaigns/{campaign.pk}/pause/", {}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Your account lacks the permission cam.change_campaign."}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    assert client.post(f"{API}/jobs/score/run/", {"wait": True}, format="json").status_code == 403
    assert not JobExecution.objects.exists()
    leads = client.get(f"{API}/leads/")
    assert leads.status_code == 403
    assert leads.json() == {"detail": "Your account lacks the permission cam.view_lead (or cam.change_lead)."}


def test_the_change_permission_also_lets_a_session_read():
    lead = factories.LeadFactory()
    user = factories.UserFactory(is_staff=True)
    grant(user, "cam.change_lead")
    client = session(user)
    assert client.get(f"{API}/leads/").status_code == 200
    assert client.get(f"{API}/leads/{lead.pk}/").status_code == 200


def test_a_permission_through_a_group_counts():
    group = Group.objects.create(name="Sales")
    group.permissions.add(Permission.objects.get(codename="view_campaign"))
    user = factories.UserFactory(is_staff=True)
    user.groups.add(group)
    assert session(user).get(f"{API}/campaigns/").status_code == 200


def test_a_superuser_session_needs_no_permission():
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    client = session(factories.SuperuserFactory())
    assert client.get(f"{API}/leads/").status_code == 200
    assert client.post(f"{API}/campaigns/{campaign.pk}/pause/", {}, format="json").status_code == 200


def test_the_health_check_stays_public():
    client = session(factories.UserFactory(is_staff=True))
    assert client.get(f"{API}/health/").status_code in (200, 503)
    assert APIClient().get(f"{API}/health/").status_code in (200, 503)


def test_a_method_a_view_does_not_serve_is_still_405_for_a_session():
    client = session(factories.UserFactory(is_staff=True))
    assert client.get(f"{API}/jobs/score/run/").status_code == 405
    assert client.delete(f"{API}/leads/").status_code == 405


def test_api_keys_need_no_django_permission():
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    read = client_with_key(read_only=True)
    assert read.get(f"{API}/leads/").status_code == 200
    refused = read.post(f"{API}/campaigns/{campaign.pk}/pause/", {}, format="json")
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]
    full = client_with_key()
    assert full.post(f"{API}/campaigns/{campaign.pk}/pause/", {}, format="json").status_code == 200


def test_a_non_staff_session_is_still_refused_whatever_its_permissions():
    user = factories.UserFactory(is_staff=False)
    grant(user, "cam.view_lead")
    response = session(user).get(f"{API}/leads/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only staff users may use the API with a session."}


def test_a_session_loads_its_permissions_once_per_request():
    factories.LeadFactory()
    user = factories.UserFactory(is_staff=True)
    grant(user, "cam.view_lead")
    client = session(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"{API}/leads/").status_code == 200
    # The user's own permissions and those of their groups: one query each.
    assert len([q for q in queries.captured_queries if '"auth_permission"' in q["sql"]]) == 2


def _views(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            cls = getattr(pattern.callback, "cls", None)
            if cls is not None:
                yield prefix + str(pattern.pattern), cls


def test_every_api_view_says_which_permissions_a_session_needs():
    resolver = get_resolver()
    views = [(route, cls) for route, cls in _views(resolver.url_patterns) if route.startswith("api/cam/")]
    assert views
    for route, cls in views:
        if Public in cls.permission_classes:
            continue
        has_model = getattr(cls, "queryset", None) is not None or "get_queryset" in {
            name for klass in cls.__mro__ if klass.__module__.startswith("cam.") for name in vars(klass)}
        assert has_model or getattr(cls, "required_permissions", None), (
            f"{route} ({cls.__name__}): give it a model queryset or declare required_permissions")
