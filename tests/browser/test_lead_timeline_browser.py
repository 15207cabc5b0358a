"""A lead's timeline in a real browser: the tab beside its fields, its story newest first, oldest first at a
click. Photographed at 1440 x 900 into test-results/screenshots/lead-timeline.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.browser.test_campaign_page_browser import open_tab, photograph
from tests.factories import SuperuserFactory
from tests.test_timeline import a_lead_that_went_through_it_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_leads_page_tells_its_story_in_its_timeline_tab(page, live_server):
    lead = a_lead_that_went_through_it_all()
    SuperuserFactory(username="timeline-admin", password=PASSWORD)

    log_in(page, live_server, "timeline-admin")
    page.goto(f"{live_server.url}/admin/cam/lead/{lead.pk}/change/")
    expect(page.locator("#id_first_name")).to_be_visible()
    open_tab(page, "Timeline")
    expect(page.locator("#id_first_name")).to_be_hidden()

    entries = page.locator(".cam-timeline-entry")
    expect(entries.first).to_contain_text("→ Unsubscribed")  # newest first: the unsubscribe came last
    expect(page.locator(".cam-timeline-sent")).to_contain_text("Step 1 sent: Brightlane and hand-offs")
    expect(page.locator(".cam-timeline-reply")).to_contain_text("Positive")
    expect(page.locator(".cam-timeline-status").first).to_contain_text("by maria")
    page.locator(".cam-timeline-sent summary").click()
    expect(page.locator(".cam-timeline-sent pre")).to_contain_text("a quick question about hand-offs")
    photograph(page, "lead-timeline")

    page.get_by_role("button", name="Newest first").click()
    expect(page.get_by_role("button", name="Oldest first")).to_be_visible()
    first_on_screen = min(entries.all(), key=lambda entry: entry.bounding_box()["y"])
    expect(first_on_screen).to_contain_text("Lead added")
    assert page.offsite_requests == []
    assert page.csp_violations == []
