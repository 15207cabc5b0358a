"""The back office for outreach: template checks on save, a preview, the outbound queue's actions."""

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.models import Lead, OutboundEmail, SendingDomain, SequenceStep
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db


def step_form(campaign, **overrides) -> dict:
    return {"campaign": campaign.pk, "position": "1", "delay_days": "0", "delay_hours": "0", "is_enabled": "on",
            "subject_template": "Hi {{ first_name }}", "body_template": "Hello", "html_template": "", **overrides}


def test_it_refuses_a_step_whose_template_does_not_render_with_the_message(admin_client):
    campaign = CampaignFactory()
    response = admin_client.post(reverse("admin:cam_sequencestep_add"),
                                 step_form(campaign, body_template="Hi {{ first_name|shout }}"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Invalid filter: 'shout'" in errors["body_template"][0]
    assert not SequenceStep.objects.exists()


def test_it_refuses_a_first_step_without_a_subject(admin_client):
    campaign = CampaignFactory()
    response = admin_client.post(reverse("admin:cam_sequencestep_add"), step_form(campaign, subject_template=""))
    assert "The first email needs a subject" in response.context["adminform"].form.errors["subject_template"][0]


def test_it_saves_a_step_that_renders(admin_client):
    campaign = CampaignFactory()
    response = admin_client.post(reverse("admin:cam_sequencestep_add"),
                                 step_form(campaign, body_template="Hi {{ first_name|default:'there' }}"))
    assert response.status_code == 302
    assert SequenceStep.objects.get().body_template == "Hi {{ first_name|default:'there' }}"


def test_it_previews_a_step_for_a_chosen_lead(admin_client):
    campaign = CampaignFactory()
    campaign.mailboxes.add(MailboxFactory())
    step = SequenceStepFactory(campaign=campaign, position=1, subject_template="{{ company }} idea",
                               body_template="Hi {{ first_name|default:'there' }}")
    LeadFactory(campaign=campaign, email="a@one.example.com", first_name="Anna", company="One")
    bob = LeadFactory(campaign=campaign, email="b@two.example.com", first_name="", company="Two")
    url = reverse("admin:cam_sequencestep_preview", args=[step.pk])
    page = admin_client.get(url).content.decode()
    assert "One idea" in page and "Hi Anna" in page
    page = admin_client.get(url, {"lead": bob.pk}).content.decode()
    assert "Two idea" in page and "Hi there" in page and "Unsubscribe" in page


def test_it_shows_per_step_sent_counts_on_the_campaign(admin_client):
    campaign = CampaignFactory()
    first = SequenceStepFactory(campaign=campaign, position=1)
    for status in ("SENT", "SENT", "PENDING"):
        OutboundEmailFactory(lead=LeadFactory(campaign=campaign), campaign=campaign, step=first, status=status)
    page = admin_client.get(reverse("admin:cam_campaign_change", args=[campaign.pk]))
    inline = page.context["inline_admin_formsets"][0]
    assert [form.original._sent for form in inline if form.original] == [2]


def test_it_cancels_and_resends_from_the_outbound_queue(admin_client):
    waiting = OutboundEmailFactory(status="PENDING")
    unknown = OutboundEmailFactory(status="UNKNOWN")
    sent = OutboundEmailFactory(status="SENT")
    url = reverse("admin:cam_outboundemail_changelist")
    admin_client.post(url, {"action": "cancel", "_selected_action": [waiting.pk, sent.pk]})
    waiting.refresh_from_db()
    sent.refresh_from_db()
    assert (waiting.status, sent.status) == ("CANCELLED", "SENT")
    assert waiting.last_error == f"Cancelled by staff:{admin_client.user.username}."
    assert Lead.objects.get(pk=waiting.lead_id).blocked_reason == "cancelled"

    admin_client.post(url, {"action": "resend", "_selected_action": [unknown.pk, waiting.pk, sent.pk]})
    statuses = dict(OutboundEmail.objects.values_list("pk", "status"))
    assert (statuses[unknown.pk], statuses[waiting.pk], statuses[sent.pk]) == ("PENDING", "PENDING", "SENT")


def test_it_lists_the_queue_by_status_with_the_reason(admin_client):
    OutboundEmailFactory(status="FAILED", last_error="550 5.1.1 No such user here")
    page = admin_client.get(reverse("admin:cam_outboundemail_changelist"), {"status__exact": "FAILED"})
    assert "550 5.1.1 No such user here" in page.content.decode()


def test_the_mailbox_list_says_which_mailbox_cannot_send_or_read_replies(admin_client):
    MailboxFactory(name="Fine")
    MailboxFactory(name="Sales 2", last_send_error="Could not connect to the SMTP server smtp.example.com:587.")
    MailboxFactory(name="Support", last_poll_error="The IMAP server imap.example.com:993 did not answer.")
    page = admin_client.get(reverse("admin:cam_mailbox_changelist")).content.decode()
    assert '<span title="Could not connect to the SMTP server smtp.example.com:587.">⚠ Cannot send</span>' in page
    assert '<span title="The IMAP server imap.example.com:993 did not answer.">⚠ Cannot read replies</span>' in page
    assert page.count("⚠") == 2


def test_the_mailbox_list_says_which_mailbox_has_its_leads_held_by_its_domain(admin_client):
    MailboxFactory(name="Held", from_email="alex@Failing.example")
    MailboxFactory(name="Overridden", from_email="ben@overridden.example")
    MailboxFactory(name="Fine", from_email="cleo@fine.example")
    SendingDomain.objects.create(domain="failing.example", verdict=SendingDomain.Verdict.FAIL, holds_mail=True)
    SendingDomain.objects.create(domain="overridden.example", verdict=SendingDomain.Verdict.FAIL, holds_mail=True,
                                 override_reason="Fixed on Monday", override_at=timezone.now())
    page = admin_client.get(reverse("admin:cam_mailbox_changelist")).content.decode()
    assert '<span title="failing.example fails SPF or DMARC: its leads are held' in page
    assert page.count("⚠ Domain held") == 1
