"""The back office in a real browser: log in, and find the demo campaign, its leads and its steps."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from cam.demo import DEMO_CAMPAIGN_NAME, DEMO_STEPS
from cam.models import Campaign
from tests.factories import SuperuserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-password"


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.locator("#nav-sidebar")).to_contain_text(username)


def test_it_shows_the_demo_campaign_leads_and_steps_to_a_logged_in_admin(page, live_server, transactional_db):
    call_command("cam_demo", verbosity=0)
    SuperuserFactory(username="browser-admin", password=PASSWORD)
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    lead_email = campaign.leads.order_by("email").values_list("email", flat=True).first()

    log_in(page, live_server, "browser-admin")

    page.goto(f"{live_server.url}/admin/cam/campaign/")
    campaign_link = page.locator("#result_list").get_by_role("link", name=DEMO_CAMPAIGN_NAME)
    expect(campaign_link).to_be_visible()

    page.goto(f"{live_server.url}/admin/cam/lead/")
    expect(page.locator("#result_list")).to_contain_text(lead_email)

    page.goto(f"{live_server.url}/admin/cam/campaign/")
    page.locator("#result_list").get_by_role("link", name=DEMO_CAMPAIGN_NAME).click()
    expect(page).to_have_url(f"{live_server.url}/admin/cam/campaign/{campaign.pk}/change/")
    expect(page.locator("#id_name")).to_have_value(DEMO_CAMPAIGN_NAME)
    for index, step in enumerate(DEMO_STEPS):
        expect(page.locator(f"#id_steps-{index}-position")).to_have_value(str(step["position"]))
        expect(page.locator(f"#id_steps-{index}-body_template")).to_have_value(step["body_template"])
    assert page.csp_violations == []
    assert page.offsite_requests == []


POLICY_PARTS = ("default-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'",
                "frame-ancestors 'none'")


def visit(page, url: str) -> None:
    """Open ``url`` and check the page came with the Content-Security-Policy."""
    response = page.goto(url)
    assert response is not None and response.ok, url
    policy = response.headers.get("content-security-policy", "")
    assert all(part in policy for part in POLICY_PARTS), (url, policy)


def test_the_back_office_and_the_api_docs_work_under_the_content_security_policy(page, live_server,
                                                                                 transactional_db):
    call_command("cam_demo", verbosity=0)
    SuperuserFactory(username="csp-admin", password=PASSWORD)
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    step = campaign.steps.order_by("position").first()
    base = live_server.url

    log_in(page, live_server, "csp-admin")
    # /admin/ is the dashboard; CAM's style sheet applies on top of the theme's.
    visit(page, f"{base}/admin/")
    expect(page.locator("#cam-health")).to_have_css("font-weight", "600")
    visit(page, f"{base}/admin/dashboard/")
    expect(page.locator("#cam-health")).to_be_visible()

    # The change form runs the admin's scripts: the inlines' "Add another" row appears.
    visit(page, f"{base}/admin/cam/campaign/{campaign.pk}/change/")
    total_forms = page.locator("#id_steps-TOTAL_FORMS")
    steps_before = int(total_forms.input_value())
    page.locator("#steps-group a.add-row").click()
    expect(total_forms).to_have_value(str(steps_before + 1))

    # The step preview re-renders for the lead picked in its list (a listener, not an inline handler).
    visit(page, f"{base}/admin/cam/sequencestep/{step.pk}/preview/")
    options = page.locator("#lead option")
    second = options.nth(1).get_attribute("value")
    with page.expect_navigation():
        page.select_option("#lead", second)
    assert f"lead={second}" in page.url

    # The lead import, up to its preview.
    visit(page, f"{base}/admin/cam/lead/import/")
    page.select_option("#id_campaign", str(campaign.pk))
    page.set_input_files("#id_import_file", files=[{
        "name": "leads.csv", "mimeType": "text/csv",
        "buffer": b"email,first_name,last_name,company\nnew.person@csp-example.com,New,Person,CSP GmbH\n"}])
    page.locator("#content form [type=submit]").first.click()
    expect(page.locator(".cam-import-summary")).to_contain_text("1 new lead")

    # Swagger UI: its files and its start-up script load, it reads the schema and calls the API.
    visit(page, f"{base}/api/docs/")
    list_campaigns = page.locator("#operations-campaigns-campaigns_list")
    expect(list_campaigns).to_be_visible()
    list_campaigns.locator(".opblock-summary").click()
    list_campaigns.locator(".try-out__btn").click()
    list_campaigns.locator(".execute").click()
    expect(list_campaigns.locator(".live-responses-table tr.response .response-col_status")).to_contain_text("200")

    assert page.csp_violations == []
    assert page.offsite_requests == []
