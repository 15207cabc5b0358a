"""A campaign's Sequence tab in a real browser: deleting a step that has emails is refused with one sentence,
unticking “Enabled” disables it, and deleting an unused step moves the later ones up."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cam.models import Lead, OutboundEmail
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import CampaignFactory, MailboxFactory, SequenceStepFactory, SuperuserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def tick_for_deletion(page, index: int) -> None:
    """Click the step's bin, as staff do (the checkbox itself is hidden in the bin's label)."""
    page.locator(f"label:has(#id_steps-{index}-DELETE)").click()
    expect(page.locator(f"#id_steps-{index}-DELETE")).to_be_checked()


def save_on_the_sequence_tab(page) -> None:
    page.locator("button[name=_continue]").click()


def test_the_sequence_tab_keeps_a_step_that_has_emails_and_renumbers_after_a_deletion(page, live_server,
                                                                                    transactional_db):
    SuperuserFactory(username="sequence-admin", password=PASSWORD)
    campaign = CampaignFactory(name="Nordic CFOs")
    steps = [SequenceStepFactory(campaign=campaign, position=position, subject_template=f"Step {position}",
                                 body_template=f"Body {position}") for position in range(1, 5)]
    mailbox = MailboxFactory()
    for n in range(3):
        lead = Lead.objects.create(campaign=campaign, email=f"sent{n}@nordic.test")
        OutboundEmail.objects.create(lead=lead, step=steps[1], campaign=campaign, mailbox=mailbox, to_email=lead.email,
                                     message_id=f"<sent.{n}@outreach.test>", status=OutboundEmail.Status.SENT,
                                     sent_at=timezone.now())
    url = f"{live_server.url}/admin/cam/campaign/{campaign.pk}/change/"
    log_in(page, live_server, "sequence-admin")

    # Step 2 has emails: ticking its deletion is refused in one sentence, and nothing changes.
    page.goto(url)
    page.locator("#tabs-items").get_by_role("link", name="Sequence", exact=True).click()
    tick_for_deletion(page, 1)
    save_on_the_sequence_tab(page)
    expect(page.locator("#steps-group")).to_contain_text("Step 2 has 3 emails; disable it instead.")
    assert list(campaign.steps.order_by("position").values_list("position", flat=True)) == [1, 2, 3, 4]

    # Disabled instead, while the unused step 3 is deleted: step 4 moves up to 3.
    page.goto(url)
    page.locator("#tabs-items").get_by_role("link", name="Sequence", exact=True).click()
    page.locator("#id_steps-1-is_enabled").uncheck()
    tick_for_deletion(page, 2)
    save_on_the_sequence_tab(page)
    expect(page.locator("#id_steps-2-position")).to_have_value("3")
    expect(page.locator("#id_steps-2-body_template")).to_have_value("Body 4")
    assert list(campaign.steps.order_by("position").values_list("body_template", "position", "is_enabled")) == [
        ("Body 1", 1, True), ("Body 2", 2, False), ("Body 4", 3, True)]

    assert page.csp_violations == []
    assert page.offsite_requests == []
