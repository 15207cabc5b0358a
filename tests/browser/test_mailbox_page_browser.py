"""The mailbox page in a real browser: staff set how far back a new IMAP folder's first poll reads."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cam.models import MailboxFolder
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import MailboxFactory, MailboxFolderFactory, SuperuserFactory

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
