"""The CAM dashboard page in the admin: live figures per period, their charts, each campaign's funnel and
stored rates, the mailboxes against their caps, the machinery — at a fixed number of queries."""

import html as html_lib
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from cam.decisions import metrics_compute
from cam.jobs.schedules import schedules_install
from cam.models import Campaign, InboundEmail, Lead, SendingDomain
from tests.decisions.helpers import answer, earlier_today, provider_event, sends
from tests.factories import (
    CampaignFactory,
    CampaignRuleFactory,
    JobExecutionFactory,
    LeadFactory,
    MailboxFactory,
    UserFactory,
    WorkerHeartbeatFactory,
)

pytestmark = pytest.mark.django_db

Category = InboundEmail.Category


def page(client, path: str = "/admin/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


# The page's parts, in the order they come.
PARTS = ["cam-periods", "cam-kpis", "cam-daily-chart", "cam-categories-chart", "cam-campaigns", "cam-mailboxes",
         "cam-health-card", "cam-schedules", "cam-worker", "cam-job-metrics", "cam-recent-jobs"]


def section(html: str, part: str) -> str:
    """The page from the element ``id=part`` to the next part."""
    start = html.index(f'id="{part}"')
    after = PARTS[PARTS.index(part) + 1:]
    return html[start:html.index(f'id="{after[0]}"') if after else None]


def kpi(html: str, key: str) -> str:
    return re.search(rf'data-kpi="{key}"[^>]*>([^<]*)<', html).group(1).strip()


def chart(html: str, element_id: str) -> tuple[dict, dict]:
    """The Chart.js data and options the page hands unfold's chart component, as the browser reads them."""
    block = html[html.index(f'id="{element_id}"'):]
    canvas = re.search(r'<canvas class="chart"[^>]*>', block).group(0)
    options = html_lib.unescape(re.search(r'data-options="([^"]*)"', canvas).group(1))
    data = html_lib.unescape(re.search(r'data-value="([^"]*)"', canvas).group(1))
    return json.loads(data), json.loads(options)


def test_staff_see_the_periods_figures_the_moment_emails_go_out(admin_client):
    campaign = CampaignFactory(name="Nordic CFOs")
    emails = sends(campaign, 27, at=earlier_today(timedelta(minutes=2)))
    answer(emails[0], Category.POSITIVE)
    answer(emails[1], Category.NEGATIVE)
    sends(campaign, 5, at=timezone.now() - timedelta(days=12))
    Lead.objects.filter(pk=emails[0].lead_id).update(status=Lead.Status.WON, status_changed_at=timezone.now())
    Lead.objects.filter(pk__in=[emails[2].lead_id, emails[3].lead_id]).update(
        status=Lead.Status.MEETING_BOOKED, status_changed_at=timezone.now())

    html = page(admin_client)

    # No metrics step ran: the page counts the emails themselves.
    assert [kpi(html, key) for key in ("sent", "replies", "positive", "meetings", "won")] == ["27", "2", "1", "2", "1"]
    assert "Meetings / won" in section(html, "cam-kpis")
    assert kpi(html, "positive_rate") == "3.7 % positive-reply rate"
    assert [kpi(page(admin_client, f"/admin/?period={period}"), "sent") for period in ("today", "30d")] == ["27", "32"]
    # The period picked is the one marked; an unknown one falls back to the last 7 days.
    periods = section(html, "cam-periods")
    assert re.search(r'href="/admin/\?period=7d"[^>]*bg-white', periods.replace("\n", " "))
    assert kpi(page(admin_client, "/admin/?period=forever"), "sent") == "27"


def test_the_charts_carry_the_daily_series_and_the_replies_by_category(admin_client):
    campaign = CampaignFactory()
    emails = sends(campaign, 6, at=earlier_today(timedelta(minutes=5)))
    sends(campaign, 4, at=timezone.now() - timedelta(days=2))
    answer(emails[0], Category.POSITIVE)
    answer(emails[1], Category.POSITIVE)
    answer(emails[2], Category.OUT_OF_OFFICE)
    answer(emails[3], Category.BOUNCE_HARD)

    html = page(admin_client)

    daily, options = chart(html, "cam-daily-chart")
    by_label = {dataset["label"]: dataset for dataset in daily["datasets"]}
    assert len(daily["labels"]) == 30 and daily["labels"][-1] == timezone.localdate().strftime("%-d %b")
    assert by_label["Sent"]["data"][-3:] == [4, 0, 6]
    assert (by_label["Replies"]["data"][-1], by_label["Positive"]["data"][-1], by_label["Hard bounces"]["data"][-1]) \
        == (2, 2, 1)
    assert sum(by_label["Sent"]["data"][:-3]) == 0  # days with nothing sent are there, as 0
    assert (by_label["Sent"]["yAxisID"], by_label["Replies"]["yAxisID"], set(options["scales"])) == ("y", "y1",
                                                                                                    {"x", "y", "y1"})
    categories, _ = chart(html, "cam-categories-chart")
    assert dict(zip(categories["labels"], categories["datasets"][0]["data"], strict=True)) == {
        "Positive": 2, "Out of office": 1, "Hard bounce": 1}


@pytest.mark.parametrize(("bounced", "level", "colour"), [(0, "ok", "green"), (4, "near", "amber"),
                                                         (6, "over", "red")])
def test_the_guarded_rates_are_coloured_by_their_level_and_show_their_limit(admin_client, bounced, level, colour):
    campaign = CampaignFactory()
    emails = sends(campaign, 100)
    for email in emails[:bounced]:
        answer(email, Category.BOUNCE_HARD)

    html = page(admin_client)

    card = html[html.index('data-kpi="hard_bounce_rate"') - 600:html.index('data-kpi="complaint_rate"')]
    assert f"cam-level-{level}" in card and f'data-level="{level}"' in card
    assert f"cam-label-{colour}" in card and "limit 5 %" in card and f"{bounced} bounced" in card
    assert kpi(html, "hard_bounce_rate") == f"{bounced} %"
    CampaignRuleFactory(campaign=campaign, threshold=Decimal("2.5"))
    assert "limit 2.5 %" in page(admin_client)


def test_each_campaigns_funnel_sits_beside_the_rates_its_rules_judge(admin_client):
    campaign = CampaignFactory(name="Nordic CFOs")
    mailbox = MailboxFactory(name="Sales desk", daily_cap=40)
    campaign.mailboxes.set([mailbox])
    emails = sends(campaign, 8, mailbox=mailbox, at=earlier_today(timedelta(minutes=3)))
    answer(emails[0], Category.POSITIVE)
    answer(emails[1], Category.BOUNCE_HARD)
    Lead.objects.filter(pk__in=[e.lead_id for e in emails]).update(last_contacted_at=timezone.now())
    Lead.objects.filter(pk=emails[0].lead_id).update(status=Lead.Status.INTERESTED, replied_at=timezone.now())
    LeadFactory.create_batch(2, campaign=campaign, status=Lead.Status.NEW)
    CampaignFactory(name="Not measured yet")
    metrics_compute()
    CampaignFactory(name="Created after the metrics step")
    WorkerHeartbeatFactory(worker_id="worker-a")
    schedules_install()

    html = page(admin_client, "/admin/dashboard/")

    assert "Healthy" in section(html, "cam-health-card") and "worker-a" in section(html, "cam-worker")
    campaigns = section(html, "cam-campaigns")
    nordic = campaigns[campaigns.index("Nordic CFOs"):campaigns.index("</tr>", campaigns.index("Nordic CFOs"))]
    counts = re.findall(r'cam-stage-(\w+)".*?cam-stage-count">([\d,]+)<', nordic, re.S)
    assert counts == [("harvested", "10"), ("qualified", "8"), ("contacted", "8"), ("replied", "1"),
                      ("positive", "1"), ("won", "0")]
    assert "positive 12.5 %" in nordic and "hard bounces 12.5 %" in nordic  # 1 of 8, as the worker stored it
    assert "Created after the metrics step" in campaigns and "Not measured yet (the worker" in campaigns
    mailboxes = section(html, "cam-mailboxes")
    assert "Sales desk" in mailboxes and "<strong>8</strong> sent / 40" in mailboxes
    assert 'title="Of the daily cap: 20.0%"' in mailboxes


def test_a_degraded_campaign_is_named_with_the_half_caps_it_sends_at(admin_client):
    slowed = CampaignFactory(name="Nordic CFOs", status=Campaign.Status.DEGRADED, daily_cap=200,
                             status_reason="Positive-reply rate 0.2 % over the last 200 sends is below 0.5 %")
    slowed.mailboxes.set([MailboxFactory(daily_cap=30), MailboxFactory(daily_cap=20),
                          MailboxFactory(daily_cap=500, is_active=False)])
    CampaignFactory(name="DACH software")

    html = page(admin_client)

    start = html.index(">", html.index('id="cam-degraded-campaigns"')) + 1
    notice = html[start:html.index('<table id="cam-campaigns"')]
    assert " ".join(re.sub(r"<[^>]+>", " ", notice).split()) == (
        "Nordic CFOs is degraded, sending at half its caps (25 of 50 a day) until resumed or the rule clears: "
        "Positive-reply rate 0.2 % over the last 200 sends is below 0.5 %.")
    campaigns = section(html, "cam-campaigns")
    row = campaigns[campaigns.index("Nordic CFOs"):campaigns.index("</tr>", campaigns.index("Nordic CFOs"))]
    assert "Degraded" in row and "Sending at half its caps (25 of 50 a day) until resumed or the rule clears" in row
    other = campaigns[campaigns.index("DACH software"):campaigns.index("</tr>", campaigns.index("DACH software"))]
    assert "half its caps" not in other


def test_no_campaign_degraded_no_notice(admin_client):
    CampaignFactory(name="DACH software")
    assert 'id="cam-degraded-campaigns"' not in page(admin_client)


def test_the_machinery_reads_for_people(admin_client, settings):
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    schedules_install()
    started = timezone.now() - timedelta(minutes=3)
    WorkerHeartbeatFactory(worker_id="worker-a", last_seen_at=timezone.now() - timedelta(seconds=12),
                           last_cycle_started_at=started, last_cycle_finished_at=started + timedelta(seconds=2.5))
    JobExecutionFactory(job="worker_cycle", status="FAILED", started_at=started,
                        finished_at=started + timedelta(seconds=2.5), error="RuntimeError: IMAP login refused")

    html = page(admin_client)

    assert "12 s ago" in section(html, "cam-worker") and "took 2.5 s" in section(html, "cam-worker")
    assert "Worker cycle" in section(html, "cam-recent-jobs") and "cam-label-red" in section(html, "cam-recent-jobs")
    assert "worker_cycle: last run failed (RuntimeError: IMAP login refused)" in section(html, "cam-health-card")
    assert "Last run failed" in section(html, "cam-schedules") and "daily at 02:00" in section(html, "cam-schedules")
    assert "1 thing to look at" in html


def test_the_admin_index_is_the_dashboard(admin_client):
    # /admin/ opens on it; the former address shows the same page.
    assert 'id="cam-dashboard"' in page(admin_client, "/admin/")
    assert 'id="cam-dashboard"' in page(admin_client, "/admin/dashboard/")


def test_it_is_for_staff_only(client, django_user_model):
    assert client.get("/admin/dashboard/").status_code == 302
    client.force_login(django_user_model.objects.create_user("clerk", password="x", is_staff=False))
    assert client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")


# What GET /admin/ costs: the session and user (2), the sidebar's count of positive replies nobody has handled (1),
# get_dashboard() (9: the week of job runs from the hours rolled up, cam.jobs.run_hours), the cards, chart and
# categories read together by reporting.overview (5), funnels (2), mailboxes (2), the sending domains that warn
# or fail (1).
PAGE_QUERIES = 22


def busy_world(size: int) -> None:
    """``size`` campaigns, mailboxes, rules, job runs and workers, ``size`` emails with replies and
    bounces, today and earlier."""
    schedules_install()
    for n in range(size):
        campaign = CampaignFactory()
        CampaignRuleFactory(campaign=campaign)
        mailbox = MailboxFactory()
        campaign.mailboxes.set([mailbox])
        [email] = sends(campaign, 1, mailbox=mailbox, at=timezone.now() - timedelta(days=n % 20, minutes=1))
        answer(email, [Category.POSITIVE, Category.BOUNCE_HARD, Category.COMPLAINT][n % 3])
        provider_event(email, "bounced")
        JobExecutionFactory(job=["harvest", "worker_cycle"][n % 2], status=["COMPLETED", "FAILED"][n % 2],
                            finished_at=timezone.now())
        WorkerHeartbeatFactory()
        SendingDomain.objects.create(domain=f"domain{n}.test", verdict=["warn", "fail"][n % 2], holds_mail=bool(n % 2),
                                     checks=[{"name": "dmarc", "verdict": "warn", "summary": "", "fix": ""}])
    metrics_compute()


@pytest.mark.parametrize("size", [1, 100])
def test_get_admin_costs_the_same_queries_for_one_or_a_hundred_campaigns_and_emails(
        admin_client, django_assert_num_queries, size):
    busy_world(size)
    with django_assert_num_queries(PAGE_QUERIES):
        html = page(admin_client)
    assert html.count('cam-stage-won"') == min(size, 12)  # the first dozen funnels; the rest a link away
    assert ("88 more campaigns" in html) == (size == 100)
    assert html.count('<li data-domain="') == min(size, 5)  # the first five; the rest a link away
    assert ("More sending domains" in html) == (size == 100)


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
