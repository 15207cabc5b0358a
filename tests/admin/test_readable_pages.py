"""The back office shows people words: job runs, score breakdowns and stored JSON read without Python syntax."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from cam.models import JobExecution, Lead
from cam.pipeline.scoring import leads_score
from tests.factories import (
    CampaignFactory,
    HarvestRejectionFactory,
    JobExecutionFactory,
    LeadFactory,
    ProviderEventFactory,
)

pytestmark = pytest.mark.django_db

CYCLE_COUNTS = {
    "steps": {"send": {"planned": 27, "sent": 27, "failed": 0}, "poll": {"mailboxes": 2, "fetched": 3, "failed": 1},
              "alerts": {"sent": 2}},
    "errors": {"poll": "mailbox Sales 2: login refused"},
    "ended_early": "stopped before alerts",
}


def cycle_run(**fields) -> JobExecution:
    started = timezone.now() - timezone.timedelta(seconds=125)
    return JobExecutionFactory(job="worker_cycle", execution_id="worker_cycle:1", counts=CYCLE_COUNTS,
                               error="poll: mailbox Sales 2: login refused", started_at=started,
                               finished_at=started + timezone.timedelta(seconds=125), **fields)


def test_the_dashboards_recent_runs_read_as_words(admin_client):
    cycle_run()

    html = admin_client.get("/admin/dashboard/").content.decode()

    runs = html[html.index('id="cam-recent-jobs"'):]
    assert "send: 27 planned, 27 sent · poll: 3 fetched, 1 failed, 2 mailboxes · alerts: 2 sent" in runs
    assert "ended early: stopped before alerts" in runs
    assert "poll: mailbox Sales 2: login refused" in runs
    assert "2 min 5 s" in runs
    # No Python dict ({'send': {...}}) escaped or not; the theme's own {'class': condition} bindings aside.
    assert not re.search(r"\{(&#x27;|')[a-z_]+(&#x27;|'): ", html)


def test_the_job_execution_list_reads_as_words(admin_client):
    cycle_run()
    JobExecutionFactory(counts={"read": 1204, "created": 1150, "rejected": 10, "campaigns": 1})
    JobExecutionFactory(status=JobExecution.Status.SKIPPED, reason="This slot already ran.")

    html = admin_client.get("/admin/cam/jobexecution/").content.decode()

    assert "1,204 read: 1,150 created, 10 rejected, 1 campaign" in html
    assert "send: 27 planned, 27 sent" in html and "poll: mailbox Sales 2: login refused" in html
    assert "2 min 5 s" in html
    assert re.search(r'<td class="field-errors_or_reason[^"]*"[^>]*>\s*This slot already ran.\s*</td>', html)
    assert not re.search(r"\{(&#x27;|'|&quot;)[a-z_]+(&#x27;|'|&quot;): ", html)


def test_a_job_executions_page_reads_as_words_with_the_json_folded_away(admin_client):
    run = cycle_run(params={"inline": True})

    html = admin_client.get(f"/admin/cam/jobexecution/{run.pk}/change/").content.decode()

    assert "send: 27 planned, 27 sent" in html and "poll: mailbox Sales 2: login refused" in html
    before_raw = html[:html.index("<details")]
    assert "{&#x27;" not in before_raw and "{&quot;" not in before_raw
    assert '<details class="cam-raw"><summary>raw</summary><pre>{\n  &quot;ended_early&quot;' in html


def test_a_leads_score_breakdown_is_a_table(admin_client):
    campaign = CampaignFactory(icp_industries=["software"], icp_countries=["FR"], icp_title_keywords=[],
                               icp_company_size_min=None, icp_company_size_max=None, weight_industry=30,
                               weight_country=20, penalty_free_mail=10, penalty_role_account=0)
    lead = LeadFactory(campaign=campaign, industry="Software", country="DE", is_free_mail=True,
                       raw_data={"email": "<b>x</b>@example.test"})
    leads_score(campaign=campaign)
    lead.refresh_from_db()
    assert lead.score == 50  # 30 of 50 points (60), less 10 for the free-mail address

    html = admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").content.decode()

    table = html[html.index('<table class="cam-score-breakdown">'):]
    table = table[:table.index("</table>")]
    assert "<td>Industry</td><td>matched</td><td>industry &#x27;Software&#x27; matches &#x27;software&#x27;</td>" \
           '<td class="num">30 of 30</td>' in table
    assert "<td>Country</td><td>no match</td>" in table and '<td class="num">0 of 20</td>' in table
    assert '<td>Free-mail address</td><td>penalty</td><td>free-mail address</td><td class="num">-10</td>' in table
    assert "Total (base 60 − penalties 10)</th><th class=\"num\">50</th>" in table
    # The stored JSON is there, folded and escaped; never as markup.
    assert "&quot;email&quot;: &quot;&lt;b&gt;x&lt;/b&gt;@example.test&quot;" in html
    assert "<b>x</b>" not in html


def test_a_lead_not_scored_yet_says_so(admin_client):
    lead = LeadFactory()
    assert Lead.objects.get(pk=lead.pk).score_breakdown == {}

    assert "Not scored yet." in admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").content.decode()


@pytest.mark.parametrize(("factory", "url", "stored"), [
    (lambda: ProviderEventFactory(payload={"type": "email.bounced", "data": {"to": ["a@b.test"]}}),
     "/admin/cam/providerevent/{}/change/", "&quot;type&quot;: &quot;email.bounced&quot;"),
    (lambda: HarvestRejectionFactory(raw_data={"email": "not-an-address", "name": "Ann"}),
     "/admin/cam/harvestrejection/{}/change/", "&quot;name&quot;: &quot;Ann&quot;"),
])
def test_stored_json_is_shown_only_folded_under_raw(admin_client, factory, url, stored):
    row = factory()

    html = admin_client.get(url.format(row.pk)).content.decode()

    raw = html.index('<details class="cam-raw"><summary>raw</summary><pre>')
    assert stored in html[raw:]
    assert "{&quot;" not in html[:raw] and "{&#x27;" not in html


def test_every_admin_page_names_the_site_and_carries_the_icon(admin_client):
    for page in (admin_client.get("/admin/"), admin_client.get("/admin/dashboard/"),
                 admin_client.get("/admin/cam/lead/"), Client().get("/admin/login/")):
        html = page.content.decode()
        assert re.search(r"\| CAM\s*</title>", html)
        assert re.search(r'<link rel="icon" href="/static/cam/favicon.svg" type="image/svg\+xml"\s*>', html)

    assert re.search(r"<title>\s*Dashboard \| CAM</title>", admin_client.get("/admin/dashboard/").content.decode())


def test_the_icon_is_a_static_file():
    path = finders.find("cam/favicon.svg")

    assert path is not None and Path(path).read_text().startswith("<svg")


def test_a_records_status_reads_as_the_lists_coloured_label_on_its_page(admin_client):
    from cam.models import InboundEmail, OutboundEmail
    from tests.factories import InboundEmailFactory, OutboundEmailFactory

    email = OutboundEmailFactory(status=OutboundEmail.Status.FAILED)
    run = JobExecutionFactory(status=JobExecution.Status.SKIPPED)
    reply = InboundEmailFactory(category=InboundEmail.Category.POSITIVE)

    for url, tone, text in ((f"/admin/cam/outboundemail/{email.pk}/change/", "red", "Failed"),
                            (f"/admin/cam/jobexecution/{run.pk}/change/", "grey", "Skipped"),
                            (f"/admin/cam/inboundemail/{reply.pk}/change/", "green", "Positive")):
        html = admin_client.get(url).content.decode()
        assert re.search(rf'<span class="cam-label cam-label-{tone}"[^>]*>{text}</span>', html), url
