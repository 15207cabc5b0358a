"""The mailbox page in a real browser: staff set how far back a new IMAP folder's first poll reads, see the
mailbox's warm-up allowance, and test its connection."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cam.models import Mailbox, MailboxFolder
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import MailboxFactory, MailboxFolderFactory, SuperuserFactory
from tests.servers.smtp import SmtpTestServer

# Photographed where test runs keep their pictures; docs/img/mailbox-warmup.png is a copy for the docs.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_choose_how_many_past_days_a_new_folder_reads(page, live_server, transactional_db):
    mailbox = MailboxFactory(name="Sales", imap_host="imap.example.com")
    folder = MailboxFolderFactory(mailbox=mailbox, name="INBOX")
    SuperuserFactory(username="folders-admin", password=PASSWORD)
    log_in(page, live_server, "folders-admin")

    page.goto(f"{live_server.url}/admin/cam/mailbox/{mailbox.pk}/change/")
    heading = page.locator("#folders-group th", has_text="Read the last N days")
    expect(heading).to_be_visible()
    expect(heading.locator("[title]")).to_have_attribute(
        "title", MailboxFolder._meta.get_field("backfill_days").help_text)

    days = page.locator("#id_folders-0-backfill_days")
    expect(days).to_have_value("0")
    days.fill("400")
    page.locator("[name=_continue]").first.click()
    expect(page.locator("#folders-group")).to_contain_text("Ensure this value is less than or equal to 365.")

    page.locator("#id_folders-0-backfill_days").fill("14")
    page.locator("[name=_continue]").first.click()
    expect(page.locator("#id_folders-0-backfill_days")).to_have_value("14")
    assert MailboxFolder.objects.get(pk=folder.pk).backfill_days == 14
    assert page.csp_violations == []


def test_staff_see_todays_allowance_and_test_the_connection(page, live_server, transactional_db, imap_server,
                                                             monkeypatch):
    monkeypatch.setenv("CAM_SECRET_SALES_SMTP", "s3cret-smtp")
    monkeypatch.setenv("CAM_SECRET_SALES_IMAP", imap_server.password)
    user = imap_server.new_user()
    day_one = timezone.localdate() - timedelta(days=3)  # 25 a day today; the full 50 five days from now
    with SmtpTestServer(auth=("sales", "s3cret-smtp")) as smtp:
        mailbox = MailboxFactory(
            name="Sales", from_email="alex@outreach.example.com", provider=Mailbox.Provider.SMTP, daily_cap=50,
            warmup_enabled=True, warmup_started_on=day_one, smtp_host=smtp.host, smtp_port=smtp.port,
            smtp_security="none", smtp_username="sales", smtp_password_env="CAM_SECRET_SALES_SMTP",
            imap_host=imap_server.host, imap_port=imap_server.port, imap_security="none", imap_username=user,
            imap_password_env="CAM_SECRET_SALES_IMAP")
        SuperuserFactory(username="warmup-admin", password=PASSWORD)
        log_in(page, live_server, "warmup-admin")

        page.goto(f"{live_server.url}/admin/cam/mailbox/{mailbox.pk}/change/")
        full_on = day_one + timedelta(days=8)
        expect(page.get_by_text("Today's allowance")).to_be_visible()
        expect(page.get_by_text(f"25 today of 50; the full 50 from {full_on.day} {full_on:%B %Y}")).to_be_visible()
        expect(page.locator("#id_warmup_enabled")).to_be_checked()

        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_text("Connection test passed.")).to_be_visible()
        expect(page.get_by_text("IMAP list folders")).to_be_visible()
        assert smtp.logins == ["sales"]
        assert "s3cret" not in page.content()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "mailbox-warmup.png"))

        monkeypatch.setenv("CAM_SECRET_SALES_IMAP", "wrong")
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_text("Connection test failed.")).to_be_visible()
        expect(page.get_by_text("IMAP login refused:")).to_contain_text("CAM_SECRET_SALES_IMAP")
        assert page.csp_violations == []
