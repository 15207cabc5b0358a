"""The reply desk in a real browser: the inbox, warmest first, a conversation's thread, reclassifying a reply,
assigning it and marking it handled, and the lead's timeline a click away. Photographed at 1440 x 900 into
test-results/screenshots/ (reply-desk-inbox.png, reply-desk-automatic.png, reply-desk-thread.png,
reply-desk-handled.png, reply-desk-composer.png, reply-desk-meeting-booked.png)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cam.models import AnswerSnippet, InboundEmail, Lead, Mailbox, OutboundEmail
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.browser.test_campaign_page_browser import photograph
from tests.factories import SuperuserFactory
from tests.inbox.test_desk import a_desk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_sales_lead_works_a_warm_reply_from_the_inbox_to_handled(page, live_server):
    desk = a_desk()
    SuperuserFactory(username="desk-admin", password=PASSWORD)

    log_in(page, live_server, "desk-admin")
    replies = page.locator("#nav-sidebar a[href='/admin/cam/reply/']")
    expect(replies).to_contain_text("3")  # the positive replies nobody has handled
    replies.click()

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("Anna Berg")
    expect(rows.first).to_contain_text("Brightlane")
    expect(rows.first).to_contain_text("Positive")
    expect(rows.first).to_contain_text("93 %")
    expect(rows.first).to_contain_text("2 h")
    expect(rows.nth(3)).to_contain_text("Question")
    expect(page.locator("#tabs-wrapper")).to_contain_text("From people · 7 waiting")
    photograph(page, "reply-desk-inbox")

    page.locator("#tabs-wrapper").get_by_role("link", name="Automatic mail").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Out of office")
    photograph(page, "reply-desk-automatic")
    page.locator("#tabs-wrapper").get_by_role("link", name=re.compile("From people")).click()

    rows.first.get_by_role("link", name=re.compile("Anna Berg")).click()
    expect(page).to_have_url(re.compile(rf"/admin/cam/reply/{desk['anna'].pk}/thread/"))
    messages = page.locator(".cam-message")
    # Oldest first: the first step (folded to a line, being older than the last three), her out-of-office
    # notice, the second step, her reply.
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text("Step 1")
    expect(messages.nth(0).locator(".cam-message-text")).to_be_hidden()
    expect(messages.nth(1)).to_contain_text("Out of office")
    expect(messages.nth(2)).to_contain_text("Step 2")
    expect(messages.nth(3)).to_contain_text("Sounds interesting — could we talk on Thursday afternoon?")
    quoted = messages.nth(3).locator(".cam-message-folded pre")
    expect(quoted).to_be_hidden()
    messages.nth(3).locator(".cam-message-folded summary").click()
    expect(quoted).to_contain_text("Just bringing this up again")
    photograph(page, "reply-desk-thread")

    page.locator("#cam-reclassify").get_by_role("button", name="Question").click()
    expect(page.locator("body")).to_contain_text("Read as question: its follow-up was applied.")
    expect(page.locator("#cam-reclassify button[aria-pressed=true]")).to_have_text("Question")
    reply = InboundEmail.objects.get(pk=desk["anna"].pk)
    assert (reply.category, reply.classified_by) == ("QUESTION", "staff:desk-admin")
    assert Lead.objects.get(pk=desk["anna"].lead_id).events.filter(actor="staff:desk-admin").exists()

    page.locator("#cam-assigned select").select_option(label="desk-admin (me)")
    page.locator("#cam-assigned").get_by_role("button", name="Assign").click()
    expect(page.locator("body")).to_contain_text("Assigned to desk-admin.")

    page.locator("#cam-mark-handled").click()
    expect(page).to_have_url(re.compile(r"/admin/cam/reply/$"))
    expect(page.locator("body")).to_contain_text("The reply from Anna Berg is handled.")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("Oliver Stein")
    expect(replies).to_contain_text("2")
    photograph(page, "reply-desk-handled")
    handled = InboundEmail.objects.get(pk=desk["anna"].pk)
    assert handled.handled_by.username == "desk-admin" and handled.assigned_to.username == "desk-admin"

    # From a conversation, the lead's page opens on its Timeline tab.
    page.goto(f"{live_server.url}/admin/cam/reply/{desk['anna'].pk}/thread/")
    expect(page.locator("#cam-handled")).to_contain_text("Handled")
    page.locator("#cam-thread-timeline").click()
    expect(page.locator("#timeline-group")).to_be_visible()
    expect(page.locator("#id_first_name")).to_be_hidden()
    expect(page.locator(".cam-timeline-reply").first).to_contain_text("Sounds interesting")
    assert page.offsite_requests == []
    assert page.csp_violations == []


def test_a_sales_lead_answers_a_warm_reply_with_a_saved_answer_and_marks_the_meeting_booked(page, live_server,
                                                                                             smtp_server):
    """Inbox → thread → read it as something else → answer with a saved answer over the real SMTP server → meeting
    booked. Photographed as reply-desk-composer.png and reply-desk-meeting-booked.png."""
    desk = a_desk()
    anna = desk["anna"]
    Mailbox.objects.filter(pk=anna.mailbox_id).update(
        provider=Mailbox.Provider.SMTP, smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_security="none",
        from_email="alex@outreach.test", from_name="Alex Sender")
    AnswerSnippet.objects.create(name="Meeting link",
                                 body="Pick a time that suits you, {{ first_name }}: https://cal.example.com/alex")
    SuperuserFactory(username="desk-admin", password=PASSWORD)

    log_in(page, live_server, "desk-admin")
    page.locator("#nav-sidebar a[href='/admin/cam/reply/']").click()
    page.locator("#result_list tbody tr").first.get_by_role("link", name=re.compile("Anna Berg")).click()
    expect(page).to_have_url(re.compile(rf"/admin/cam/reply/{anna.pk}/thread/"))

    # Read as a question first, then as positive again: each click applies the follow-up, recorded.
    page.locator("#cam-reclassify").get_by_role("button", name="Question").click()
    expect(page.locator("body")).to_contain_text("Read as question: its follow-up was applied.")
    page.locator("#cam-reclassify").get_by_role("button", name="Positive").click()
    expect(page.locator("#cam-reclassify button[aria-pressed=true]")).to_have_text("Positive")

    body = page.locator("#cam-reply-composer textarea")
    body.fill("Thursday at 3 works well. ")
    body.press("End")
    page.locator(".cam-composer-snippet", has_text="Meeting link").click()
    expect(body).to_have_value("Thursday at 3 works well. Pick a time that suits you, Anna: https://cal.example.com/alex")
    page.locator("#cam-reply-composer").scroll_into_view_if_needed()
    photograph(page, "reply-desk-composer")
    page.locator(".cam-composer-send").click()
    expect(page.locator("body")).to_contain_text("Answer sent to anna@brightlane.example.com")
    (delivered,) = smtp_server.messages
    assert delivered.rcpt_tos == ["anna@brightlane.example.com"]
    assert delivered.parsed["In-Reply-To"] == InboundEmail.objects.get(pk=anna.pk).message_id
    answer = OutboundEmail.objects.get(kind=OutboundEmail.Kind.MANUAL)
    assert "Pick a time that suits you, Anna: https://cal.example.com/alex" in answer.body_text
    expect(page.locator(".cam-message-out").last).to_contain_text("Sent by hand")

    outcome = page.locator("#cam-outcome")
    outcome.get_by_role("textbox").fill("Call on Thursday at 3")
    outcome.get_by_role("button", name="Meeting booked").click()
    expect(page.locator("body")).to_contain_text("anna@brightlane.example.com is now meeting booked.")
    expect(page.locator(".cam-thread-facts")).to_contain_text("Meeting booked")
    photograph(page, "reply-desk-meeting-booked")
    lead = Lead.objects.get(pk=anna.lead_id)
    assert lead.status == Lead.Status.MEETING_BOOKED
    assert lead.events.filter(actor="staff:desk-admin", to_status=Lead.Status.MEETING_BOOKED,
                              reason="Call on Thursday at 3").exists()
    assert page.offsite_requests == []
    assert page.csp_violations == []
