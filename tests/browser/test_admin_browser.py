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
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


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
