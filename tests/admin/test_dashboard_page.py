"""The CAM dashboard page in the admin: health, the worker and each campaign's stored rates."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.decisions import metrics_compute
from cam.models import InboundEmail
from tests.decisions.helpers import answer, sends
from tests.factories import CampaignFactory, MailboxFactory, UserFactory, WorkerHeartbeatFactory

pytestmark = pytest.mark.django_db


def test_staff_see_each_campaigns_and_mailboxes_stored_rates(admin_client):
    campaign = CampaignFactory(name="Nordic CFOs")
    mailbox = MailboxFactory(name="Sales desk")
    emails = sends(campaign, 8, mailbox=mailbox)
    answer(emails[0], InboundEmail.Category.POSITIVE)
    answer(emails[1], InboundEmail.Category.BOUNCE_HARD)
    CampaignFactory(name="Not measured yet")
    metrics_compute()
    CampaignFactory(name="Created after the metrics step")
    WorkerHeartbeatFactory(worker_id="worker-a")

    page = admin_client.get("/admin/dashboard/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Health:" in html and "worker-a" in html
    campaigns = html[html.index('id="cam-campaigns"'):html.index('id="cam-mailboxes"')]
    assert "Nordic CFOs" in campaigns and "(12.5 %)" in campaigns  # 1 positive and 1 hard bounce of 8
    assert "Created after the metrics step" in campaigns and "Not measured yet (the worker" in campaigns
    assert "Sales desk" in html[html.index('id="cam-mailboxes"'):]


def test_the_admin_index_is_the_dashboard(admin_client):
    # /admin/ opens on it; the former address shows the same page.
    assert 'id="cam-dashboard"' in admin_client.get("/admin/").content.decode()
    assert 'id="cam-dashboard"' in admin_client.get("/admin/dashboard/").content.decode()


def test_it_is_for_staff_only(client, django_user_model):
    assert client.get("/admin/dashboard/").status_code == 302
    client.force_login(django_user_model.objects.create_user("clerk", password="x", is_staff=False))
    assert client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")


def test_its_queries_do_not_grow_with_campaigns(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/admin/dashboard/").status_code == 200
        return len(captured)

    CampaignFactory()
    metrics_compute()
    one = queries()
    for _ in range(3):
        CampaignFactory()
        MailboxFactory()
    metrics_compute()
    assert queries() == one


def staff_with(client, *codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    return client


def test_staff_need_the_permission_to_view_job_runs(client):
    # Job runs, their errors and the worker's state are on the page: what GET /api/cam/metrics/ asks for.
    clerk = staff_with(client, "view_campaign")
    assert clerk.get("/admin/dashboard/").status_code == 403
    index = clerk.get("/admin/").content.decode()
    assert 'id="cam-dashboard"' not in index and ">Dashboard<" not in index
    assert "/admin/cam/campaign/" in index  # what the clerk may see instead

    operator = staff_with(client, "view_jobexecution")
    assert operator.get("/admin/dashboard/").status_code == 200
    assert 'id="cam-dashboard"' in operator.get("/admin/").content.decode()
