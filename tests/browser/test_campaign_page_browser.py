"""A campaign's page in a real browser: its tabs, why its leads are held back, and pausing and resuming it.

Each tab is photographed at 1440 x 900 into test-results/screenshots/ (campaign-settings.png, …) for people
to look at; the test asserts what the page says, not how it looks.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from cam.demo import DEMO_CAMPAIGN_NAME
from cam.models import Campaign, Lead
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import LeadFactory, SuperuserFactory, SuppressionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
HELD_BACK = {Lead.BlockedReason.MAILBOX_CAP: 3, Lead.BlockedReason.OUTSIDE_WINDOW: 2,
             Lead.BlockedReason.SUPPRESSED: 1}


def photograph(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def open_tab(page, title: str) -> None:
    page.locator("#tabs-items").get_by_role("link", name=title, exact=True).click()


def test_a_campaign_shows_why_its_leads_wait_and_pauses_and_resumes_from_its_page(page, live_server,
                                                                                  transactional_db):
    call_command("cam_demo", verbosity=0)
    SuperuserFactory(username="campaign-admin", password=PASSWORD)
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    now = timezone.now()
    for reason, count in HELD_BACK.items():
        for minutes in range(count):
            LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE, blocked_reason=reason,
                        next_send_at=now - timedelta(minutes=minutes + 1))
    SuppressionFactory(email=Lead.objects.get(campaign=campaign, blocked_reason=Lead.BlockedReason.SUPPRESSED).email)
    url = f"{live_server.url}/admin/cam/campaign/{campaign.pk}/change/"

    log_in(page, live_server, "campaign-admin")
    page.goto(url)
    tabs = page.locator("#tabs-items")
    for title in ("Settings", "Sequence", "Lead sources", "Rules", "Performance", "Diagnose"):
        expect(tabs.get_by_role("link", name=title, exact=True)).to_be_visible()
    expect(page.locator("#id_name")).to_be_visible()
    photograph(page, "campaign-settings")

    open_tab(page, "Sequence")
    expect(page.locator("#id_name")).to_be_hidden()
    expect(page.locator("#cam-preview-lead")).to_be_visible()
    expect(page.locator(".cam-step-preview").first).to_contain_text("Subject")
    photograph(page, "campaign-sequence")

    open_tab(page, "Rules")
    rules = page.locator("#rules-group .formset-wrapper")
    expect(rules).to_be_visible()
    # The rules table fits its box: nothing to scroll sideways.
    assert rules.evaluate("box => box.scrollWidth <= box.clientWidth"), "the rules table is wider than its box"
    photograph(page, "campaign-rules")

    open_tab(page, "Performance")
    expect(page.locator("#cam-step-performance")).to_be_visible()
    photograph(page, "campaign-performance")

    open_tab(page, "Diagnose")
    held_back = page.locator("#cam-held-back")
    expect(held_back).to_be_visible()
    for reason, count in HELD_BACK.items():
        row = held_back.locator(f'tr[data-reason="{reason}"]')
        expect(row).to_contain_text(Lead.BlockedReason(reason).label)
        expect(row.locator("td").nth(1)).to_have_text(str(count))
    expect(page.locator("#cam-held-back-total")).to_have_text(str(sum(HELD_BACK.values())))
    photograph(page, "campaign-diagnose")

    # Pause, confirmed in its dialog: the page comes back on the same tab, paused.
    page.locator("a[href$='/pause/']").click()
    dialog = page.locator("#modal-content")
    expect(dialog).to_contain_text("Pause this campaign?")
    photograph(page, "campaign-pause-dialog")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("a[href$='/resume/']")).to_be_visible()
    expect(page.get_by_text(f"Campaign “{DEMO_CAMPAIGN_NAME}” paused.")).to_be_visible()
    expect(page.locator("#cam-held-back")).to_be_visible()  # still on Diagnose
    expect(page.locator("#cam-next-send-why")).to_have_text("Nothing goes out while the campaign is paused.")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED

    page.locator("a[href$='/resume/']").click()
    page.locator("#modal-content button[type=submit]").click()
    expect(page.locator("a[href$='/pause/']")).to_be_visible()
    expect(page.get_by_text(f"Campaign “{DEMO_CAMPAIGN_NAME}” resumed.")).to_be_visible()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE

    assert page.csp_violations == []
    assert page.offsite_requests == []
