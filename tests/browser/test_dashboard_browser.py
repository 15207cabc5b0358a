"""The dashboard in Chromium at 1440 x 900: /admin/ opens on it after logging in, its KPI cards show the
live figures, its charts are drawn (the canvases hold pixels, not just a tag), the period switch works,
and no request leaves the test server. The page is photographed into test-results/screenshots/."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from cam.models import InboundEmail, Lead, OutboundEmail
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "dashboard-browser-password"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"

# How many of a canvas's pixels are not transparent: a drawn chart has thousands, an empty tag none.
PAINTED = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
  return painted;
}"""


def seed() -> None:
    now = timezone.now()
    campaign = factories.CampaignFactory(name="Nordic CFOs")
    mailbox = factories.MailboxFactory(name="Sales desk")
    step = factories.SequenceStepFactory(campaign=campaign, position=1)
    for index in range(12):
        lead = factories.LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE)
        email = factories.OutboundEmailFactory(lead=lead, campaign=campaign, step=step, mailbox=mailbox,
                                               status=OutboundEmail.Status.SENT,
                                               sent_at=now - timedelta(days=index % 6))
        if index % 3 == 0:
            factories.InboundEmailFactory(mailbox=mailbox, lead=lead, outbound_email=email, from_email=lead.email,
                                          category=InboundEmail.Category.POSITIVE, processed_at=now,
                                          received_at=now - timedelta(days=index % 6))
    factories.SuperuserFactory(username="dash-admin", password=PASSWORD)


def test_the_dashboard_shows_its_cards_and_draws_its_charts(page, live_server):
    seed()

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "dash-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/admin/")

    expect(page.locator("#cam-kpis")).to_be_visible()
    expect(page.locator('[data-kpi="sent"]')).to_have_text("12")
    expect(page.locator('[data-kpi="positive"]')).to_have_text("4")
    canvases = page.locator("#cam-dashboard canvas")
    expect(canvases.first).to_be_visible()
    assert canvases.count() >= 2  # the last 30 days and the replies by category
    page.wait_for_function("() => [...document.querySelectorAll('#cam-dashboard canvas')]"
                           ".every(c => c.width > 0 && c.height > 0)")
    # The charts draw as they animate in, later on a busy machine: wait until each has painted, then
    # name any that never did.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(f"() => [...document.querySelectorAll('#cam-dashboard canvas')]"
                               f".every(canvas => ({PAINTED})(canvas) > 500)", timeout=15_000)
    for index in range(canvases.count()):
        assert canvases.nth(index).evaluate(PAINTED) > 500, f"chart {index} is not drawn"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))

    # Today's figures: only what went out today.
    page.locator("#cam-periods").get_by_role("link", name="Today").click()
    expect(page).to_have_url(f"{live_server.url}/admin/?period=today")
    expect(page.locator('[data-kpi="sent"]')).to_have_text("2")

    assert page.csp_violations == []
    assert page.offsite_requests == []
