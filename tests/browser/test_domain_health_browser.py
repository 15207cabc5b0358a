"""Sending-domain health in a real browser: saving a mailbox checks its domain against the suite's DNS server,
its page shows pass / warn / fail per check with what to fix, and staff override the hold in a dialog.

The mailbox panel is photographed at 1440 x 900 into test-results/screenshots/domain-health.png (docs/img/ keeps
a copy for docs/sending-domains.md), the dashboard's list into dashboard-sending-domains.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from cam.models import SendingDomain
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.domains.conftest import m365_mailbox, zones  # noqa: F401  # the zones fixture
from tests.factories import SuperuserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


@pytest.mark.usefixtures("zones")
def test_a_mailbox_page_shows_its_domains_health_and_staff_override_the_hold(page, live_server):
    mailbox = m365_mailbox("nodmarc.example", name="Sales")
    SuperuserFactory(username="domains-admin", password=PASSWORD)
    log_in(page, live_server, "domains-admin")

    page.goto(f"{live_server.url}/admin/cam/mailbox/{mailbox.pk}/change/")
    panel = page.locator(".cam-domain-health")
    expect(panel).to_contain_text("Not checked yet")
    page.locator("[name=_continue]").first.click()  # saving checks the domain once the save has committed

    expect(panel).to_contain_text("its mailboxes' leads are held until SPF and DMARC pass")
    expect(panel.locator("[data-check=spf]")).to_contain_text("Pass")
    expect(panel.locator("[data-check=dkim]")).to_contain_text("Pass")
    dmarc = panel.locator("[data-check=dmarc]")
    expect(dmarc).to_contain_text("Fail")
    expect(dmarc.locator("code")).to_have_text("v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.example")
    panel.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -120)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "domain-health.png"))

    panel.locator("a", has_text="nodmarc.example").click()
    page.locator("a[href$='/override/']").click()
    dialog = page.locator("#modal-content")
    expect(dialog).to_contain_text("Let this domain send although SPF or DMARC fails?")
    dialog.locator("textarea[name=reason]").fill("DMARC record goes live on Monday")
    dialog.locator("button[type=submit]").click()

    expect(page.locator(".cam-domain-health")).to_contain_text("overridden by domains-admin")
    domain = SendingDomain.objects.get(domain="nodmarc.example")
    assert (domain.override_reason, domain.holds_leads) == ("DMARC record goes live on Monday", False)
    assert domain.history[0]["by"] == "staff:domains-admin"
    expect(page.locator("a[href$='/hold/']")).to_be_visible()

    # The dashboard lists it among the domains to fix, no longer holding leads.
    page.goto(f"{live_server.url}/admin/")
    listed = page.locator("#cam-sending-domains [data-domain='nodmarc.example']")
    expect(listed).to_contain_text("nodmarc.example Fail DMARC")
    expect(listed).not_to_contain_text("leads held")
    listed.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-sending-domains.png"))
    assert page.csp_violations == []


def test_a_domains_page_counts_its_authentication_failure_reports_and_opens_them(page, live_server):
    """Photographed into test-results/screenshots/domain-auth-failures.png (docs/img/ keeps a copy for
    docs/classification.md)."""
    from cam.models import InboundEmail
    from tests.factories import InboundEmailFactory

    domain = SendingDomain.objects.create(domain="brightloop.example", verdict="pass", checks=[
        {"name": "spf", "verdict": "pass", "summary": "SPF allows the mailbox's provider.", "fix": ""},
        {"name": "dmarc", "verdict": "pass", "summary": "DMARC is published: p=quarantine.", "fix": ""}])
    for number in range(2):
        InboundEmailFactory(category=InboundEmail.Category.AUTH_FAILURE, reported_domain="brightloop.example",
                            from_email="opendmarc@receiver.example", subject=f"DMARC failure report {number + 1}",
                            classification_reasons=["an authentication-failure report (Auth-Failure: dmarc), "
                                                    "not a person's complaint", "reported domain brightloop.example"])
    SuperuserFactory(username="dmarc-admin", password=PASSWORD)
    log_in(page, live_server, "dmarc-admin")

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/admin/cam/sendingdomain/{domain.pk}/change/")
    reports = page.locator(".cam-domain-auth-failures")
    expect(reports).to_contain_text("2 authentication-failure reports in the last 30 days")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "domain-auth-failures.png"))

    reports.locator("a", has_text="Read them").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("Authentication failure report")
    assert page.csp_violations == []
