"""The leads and outbound lists fit the window the back office is designed for (1440 x 900, sidebar open): every
column a sales lead works from is in view without scrolling sideways, however long the names. Screenshots of
both go to test-results/screenshots/ for a person to look at."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cam.models import Lead, OutboundEmail
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-password"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
WIDTH = 1440

CAMPAIGNS = ["Enterprise Logistics Decision Makers DACH Q3 — Warehouse Automation Follow-up",
             "Mid-market Fintech CTOs in Benelux and the Nordics (second wave, revised copy)", "Spring"]
COMPANIES = ["Internationale Speditions- und Lagerhaus-Gesellschaft mbH & Co. KG", "Acme",
             "Northwind Traders Scandinavia Holding AB", "Müller Hochregallager Systemtechnik GmbH"]


def seed() -> None:
    """About forty leads and their emails, with the longest values a list meets."""
    campaigns = [factories.CampaignFactory(name=name) for name in CAMPAIGNS]
    mailbox = factories.MailboxFactory(name="Sales team — Northern Europe outreach inbox",
                                       from_email="alexandra.sender-long@outreach-northern-europe.example.com")
    steps = {campaign.pk: factories.SequenceStepFactory(campaign=campaign, position=1) for campaign in campaigns}
    statuses, reasons = list(Lead.Status), list(Lead.BlockedReason)
    now = timezone.now()
    for n in range(40):
        campaign = campaigns[n % len(campaigns)]
        lead = factories.LeadFactory(
            campaign=campaign, email=f"maximilian.alexander.hochstetter-{n}@internationale-spedition.example.com",
            first_name="Maximilian-Alexander", last_name="von Hochstetter-Lindqvist", company=COMPANIES[n % 4],
            status=statuses[n % len(statuses)], score=(n * 7) % 101, blocked_reason=reasons[n % len(reasons)],
            next_send_at=now + timedelta(days=n % 9, hours=n))
        status = [OutboundEmail.Status.SENT, OutboundEmail.Status.FAILED, OutboundEmail.Status.UNKNOWN][n % 3]
        factories.OutboundEmailFactory(
            lead=lead, step=steps[campaign.pk], mailbox=mailbox, status=status, attempts=n % 4,
            subject="Quick question about your warehouse automation roadmap for the next fiscal year, Maximilian",
            last_error="" if status == OutboundEmail.Status.SENT else "451 4.7.1 Greylisted, please try again later",
            sent_at=now - timedelta(hours=n) if status == OutboundEmail.Status.SENT else None)


def log_in(page, live_server) -> None:
    factories.SuperuserFactory(username="lists-admin", password=PASSWORD)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "lists-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/admin/")


def scrolls_sideways(page) -> list[str]:
    """Each box around the table that clips what it holds (the table's scrolling wrapper, the theme's scrollbar
    layers) and holds more than its width: one the table would scroll sideways in."""
    return page.evaluate("""() => {
        const wide = [];
        for (let node = document.querySelector('#result_list'); node; node = node.parentElement) {
            const clips = getComputedStyle(node).overflowX !== 'visible';
            if (clips && node.scrollWidth > node.clientWidth + 1) wide.push(`${node.tagName}.${node.className}`);
        }
        return wide;
    }""")


def header(page, text: str):
    """The column headed ``text``; ``.column-<field>`` for one whose title is part of another's."""
    if text.startswith(".column-"):
        return page.locator(f"#result_list thead th{text}")
    return page.locator("#result_list thead th").filter(has_text=text)


def fits(page, url: str, headers: list[str], screenshot: str) -> None:
    page.goto(url)
    expect(page.locator("#nav-sidebar")).to_be_visible()  # the sidebar is open
    for text in headers:
        box = header(page, text).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (text, box)
    assert scrolls_sideways(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot))


def test_the_leads_and_outbound_lists_fit_the_window_without_scrolling_sideways(page, live_server, transactional_db):
    seed()
    log_in(page, live_server)

    fits(page, f"{live_server.url}/admin/cam/lead/", ["Email", "Campaign", "Status", "Score", "Blocked", "Next send"],
         "leads-list.png")
    # A long value is cut on one line, and whole on hover.
    first_campaign = page.locator("#result_list td.field-campaign_cell span").first
    assert first_campaign.get_attribute("title") in CAMPAIGNS
    row_heights = page.locator("#result_list tbody tr").evaluate_all("rows => rows.map(row => row.offsetHeight)")
    assert len(row_heights) == 40 and max(row_heights) < 60, row_heights  # one line each

    # Sorted by next send, the column's header carries its sort buttons and still fits.
    fits(page, f"{live_server.url}/admin/cam/lead/?o=8", ["Status", "Next send"], "leads-list-sorted.png")

    fits(page, f"{live_server.url}/admin/cam/outboundemail/", ["To", "Subject", "Step", "Mailbox", "Status",
                                                               "Attempts", "Sent at"], "outbound-list.png")
    assert page.csp_violations == []
    assert page.offsite_requests == []


def test_the_campaign_list_fits_the_window_without_scrolling_sideways(page, live_server, transactional_db):
    seed()
    paused = factories.CampaignFactory(name="UK retail — store operations leaders, second wave with the revised copy",
                                       status="PAUSED")
    paused.status_reason = ("Paused by rule hard-bounce rate: 6.2 % of the last 200 sends bounced hard, above the "
                            "threshold of 5 %")
    paused.save(update_fields=["status_reason"])
    log_in(page, live_server)

    fits(page, f"{live_server.url}/admin/cam/campaign/",
         ["Name", ".column-status_label", "Status reason", "Leads", "In sequence", "Sent", "Replies", "Positive",
          "Bounced", "Steps"], "campaign-list.png")
    assert page.csp_violations == []
