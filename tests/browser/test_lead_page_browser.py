"""A lead's page in a real browser: its status read-only as a label, and marked "meeting booked" with the
button at the top of the page, through the status service.

The page is photographed at 1440 x 900 into test-results/screenshots/ (lead-meeting-dialog.png,
lead-meeting-booked.png, lead-meeting-booked-status.png, lead-change-status-dialog.png) for people to look
at; the test asserts what the page says, not how it looks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from cam.models import Lead, LeadEvent
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import LeadFactory, SuperuserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


def photograph(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_staff_mark_a_meeting_booked_from_the_leads_page(page, live_server, transactional_db):
    SuperuserFactory(username="lead-admin", password=PASSWORD)
    lead = LeadFactory(email="anna@brightlane.example.com", first_name="Anna", last_name="Schmidt",
                       company="Brightlane", status=Lead.Status.INTERESTED,
                       status_reason="Positive reply: “Sounds good”")

    log_in(page, live_server, "lead-admin")
    page.goto(f"{live_server.url}/admin/cam/lead/{lead.pk}/change/")
    status = page.locator(".readonly .cam-label")  # the one label on the page: the status, read-only
    expect(status).to_have_text("Interested")
    expect(page.locator("select[name=status], input[name=status]")).to_have_count(0)  # read-only: no field

    page.locator("a[href$='/meeting-booked/']").click()
    dialog = page.locator("#modal-content")
    expect(dialog).to_contain_text("Mark this lead “meeting booked”?")
    expect(dialog).to_contain_text("anna@brightlane.example.com · now Interested")
    dialog.locator("textarea[name=reason]").fill("Demo on Tuesday at 10:00")
    photograph(page, "lead-meeting-dialog")
    dialog.locator("button[type=submit]").click()

    expect(page.get_by_text("Lead anna@brightlane.example.com is now meeting booked.")).to_be_visible()
    expect(status).to_have_text("Meeting booked")
    expect(page.locator(".readonly", has_text="Demo on Tuesday at 10:00")).to_be_visible()  # the status reason
    # From a meeting, the outcomes left: won or lost.
    expect(page.locator("a[href$='/meeting-booked/']")).to_have_count(0)
    expect(page.locator("a[href$='/won/']")).to_be_visible()
    photograph(page, "lead-meeting-booked")
    status.scroll_into_view_if_needed()
    photograph(page, "lead-meeting-booked-status")

    # Any other change: the statuses a meeting may lead to, and why.
    page.locator("a[href$='/change-status/']").click()
    expect(dialog).to_contain_text("Change the lead's status")
    expect(dialog.locator("select[name=status] option")).to_have_text(
        ["Choose…", "Interested", "Referred us to someone else", "Not interested", "Nurture", "Dead", "Won", "Lost",
         "Unsubscribed", "Bounced"])
    photograph(page, "lead-change-status-dialog")

    event = LeadEvent.objects.get(lead=lead)
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "INTERESTED", "MEETING_BOOKED", "staff:lead-admin", "Demo on Tuesday at 10:00")
    assert page.csp_violations == []
    assert page.offsite_requests == []
