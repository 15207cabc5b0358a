"""A campaign's steps through cam.sequences: a step that has emails is kept (it can be disabled, and the
planner passes over it), deleting an unused step moves the later ones up so positions stay 1..n, and the
leads move with their steps. Every door (the service, the API, the campaign page, the steps' own pages)
applies the same rules with the same words."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.followup import leads_no_reply_timeout
from cam.models import Campaign, Lead, OutboundEmail, SequenceStep
from cam.outreach.planning import outreach_plan
from cam.sequences import (
    FirstStepWithoutSubject,
    StepInUse,
    sequence_step_delete,
    sequence_step_save,
    sequence_steps_delete,
)
from tests.api.conftest import client_with_key
from tests.backoffice.test_campaign_admin import change_form_data
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, SequenceStepFactory
from tests.outreach.test_sending import due_lead, send_now, smtp_mailbox

pytestmark = pytest.mark.django_db


def sequence(count: int, **campaign_fields) -> list[SequenceStep]:
    """``count`` steps at 1..count, each with its own subject (“Step 1”, …) and body, sending at any hour."""
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24, daily_cap=100,
                            **campaign_fields)
    owner.mailboxes.set([MailboxFactory(daily_cap=100, min_gap_seconds=0)])
    return [SequenceStepFactory(campaign=owner, position=position, subject_template=f"Step {position}",
                                body_template=f"Body {position}", delay_days=position)
            for position in range(1, count + 1)]


def emails_from(step: SequenceStep, count: int) -> None:
    """``count`` sent emails of ``step``, to as many new leads, made in bulk."""
    mailbox = MailboxFactory()
    leads = Lead.objects.bulk_create([Lead(campaign_id=step.campaign_id, email=f"s{step.pk}.{n}@leads{n}.test")
                                      for n in range(count)])
    OutboundEmail.objects.bulk_create([
        OutboundEmail(lead=lead, step=step, campaign_id=step.campaign_id, mailbox=mailbox, to_email=lead.email,
                      message_id=f"<s{step.pk}.{lead.pk}@outreach.test>", status=OutboundEmail.Status.SENT,
                      sent_at=timezone.now()) for lead in leads])


def positions(campaign: Campaign) -> list[tuple[str, int]]:
    return list(campaign.steps.order_by("position").values_list("body_template", "position"))


# -- the service -------------------------------------------------------------------------------------------

def test_deleting_a_step_moves_the_later_ones_up_and_the_leads_with_them():
    first, second, _, _ = sequence(4)
    campaign = first.campaign
    leads = {had: LeadFactory(campaign=campaign, current_step=had) for had in range(5)}

    sequence_step_delete(step=second)

    assert positions(campaign) == [("Body 1", 1), ("Body 3", 2), ("Body 4", 3)]
    moved = dict(Lead.objects.filter(pk__in=[lead.pk for lead in leads.values()]).values_list("pk", "current_step"))
    # Each lead keeps the step after the one it had: the one that had step 1 (or 2) gets the old step 3 next.
    assert {had: moved[lead.pk] for had, lead in leads.items()} == {0: 0, 1: 1, 2: 1, 3: 2, 4: 3}


def test_deleting_the_last_step_renumbers_nothing_and_several_at_once_close_every_gap():
    steps = sequence(5)
    campaign = steps[0].campaign

    sequence_step_delete(step=steps[4])
    sequence_steps_delete(steps=[steps[0], steps[2]])

    assert positions(campaign) == [("Body 2", 1), ("Body 4", 2)]


def test_a_step_that_has_emails_is_kept_with_one_sentence():
    _, second, _ = sequence(3)
    emails_from(second, 3)

    with pytest.raises(StepInUse) as refused:
        sequence_step_delete(step=second)

    assert str(refused.value) == "Step 2 has 3 emails; disable it instead."
    assert positions(second.campaign) == [("Body 1", 1), ("Body 2", 2), ("Body 3", 3)]


def test_a_deletion_refused_for_one_step_deletes_none_of_the_others():
    first, second, third = sequence(3)
    emails_from(second, 1)

    with pytest.raises(StepInUse):
        sequence_steps_delete(steps=[first, second, third])

    assert positions(first.campaign) == [("Body 1", 1), ("Body 2", 2), ("Body 3", 3)]


def test_disabling_the_first_step_is_refused_when_the_next_has_no_subject():
    first, second = sequence(2)
    SequenceStep.objects.filter(pk=second.pk).update(subject_template="")

    with pytest.raises(FirstStepWithoutSubject) as refused:
        sequence_step_save(step=first, fields={"is_enabled": False})

    assert str(refused.value) == ("Step 2 would become the campaign's first email, and it has no subject; give it one "
                                  "first (follow-ups reuse the first email's subject).")
    first.refresh_from_db()
    assert first.is_enabled


# -- the planner and the sender pass over a disabled step ----------------------------------------------------

def test_the_planner_passes_over_a_disabled_step_to_the_next_enabled_one():
    first, second, third = sequence(3)
    emails_from(second, 1)
    sequence_step_save(step=second, fields={"is_enabled": False})
    had_first = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=1,
                            next_send_at=timezone.now() - timedelta(minutes=1))
    new = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=0,
                      next_send_at=timezone.now() - timedelta(minutes=1))

    assert outreach_plan()["planned"] == 2

    planned = dict(OutboundEmail.objects.filter(status=OutboundEmail.Status.PENDING).values_list("lead_id", "step_id"))
    assert planned == {had_first.pk: third.pk, new.pk: first.pk}


def queued_for_step_two(first: SequenceStep, second: SequenceStep) -> tuple[Lead, OutboundEmail, OutboundEmail]:
    """A lead that had step 1 and has step 2 planned, and one whose step 2 is in a sender's hands."""
    waiting = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=1,
                          next_send_at=timezone.now() - timedelta(minutes=1))
    in_hand = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=1,
                          next_send_at=timezone.now() - timedelta(minutes=1))
    assert outreach_plan()["planned"] == 2
    queued, held = (OutboundEmail.objects.get(lead=lead, step=second) for lead in (waiting, in_hand))
    OutboundEmail.objects.filter(pk=held.pk).update(status=OutboundEmail.Status.CLAIMED, claimed_by="worker-1:abc")
    return waiting, queued, held


def assert_step_two_cancelled_and_its_lead_gets_step_three(waiting: Lead, queued: OutboundEmail, held: OutboundEmail,
                                                           third: SequenceStep) -> None:
    queued.refresh_from_db()
    held.refresh_from_db()
    assert (queued.status, queued.last_error) == (OutboundEmail.Status.CANCELLED,
                                                  "Step 2 was disabled before this email went out.")
    assert held.status == OutboundEmail.Status.CLAIMED  # a sender has it: its outcome is the sender's to write
    assert outreach_plan()["planned"] == 1
    assert OutboundEmail.objects.filter(lead=waiting, status=OutboundEmail.Status.PENDING).get().step == third


def test_disabling_a_step_cancels_its_emails_still_waiting_and_their_leads_get_the_next_step():
    first, second, third = sequence(3)
    waiting, queued, held = queued_for_step_two(first, second)

    sequence_step_save(step=second, fields={"is_enabled": False})

    assert_step_two_cancelled_and_its_lead_gets_step_three(waiting, queued, held, third)


def test_a_disabled_first_step_makes_the_next_enabled_one_the_first_email(smtp_server):
    mailbox = smtp_mailbox(smtp_server)
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24, daily_cap=100)
    owner.mailboxes.set([mailbox])
    old_first = SequenceStepFactory(campaign=owner, position=1, subject_template="Old opener", body_template="Old.")
    SequenceStepFactory(campaign=owner, position=2, subject_template="New opener", body_template="New.")
    SequenceStepFactory(campaign=owner, position=3, subject_template="", body_template="Bumping this.", delay_days=2)
    sequence_step_save(step=old_first, fields={"is_enabled": False})
    lead = due_lead(owner)

    assert send_now()["sent"] == 1
    lead.refresh_from_db()
    # After step 2 the next enabled step is 3: due after its own delay.
    assert lead.current_step == 2
    assert timedelta(days=2) - timedelta(minutes=1) < lead.next_send_at - timezone.now() <= timedelta(days=2)
    Lead.objects.filter(pk=lead.pk).update(next_send_at=timezone.now() - timedelta(seconds=1))
    assert send_now()["sent"] == 1
    first, second = (message.parsed for message in smtp_server.messages)
    assert (first["Subject"], second["Subject"]) == ("New opener", "Re: New opener")


def test_a_lead_that_had_the_last_enabled_step_times_out_as_after_the_last_step():
    first, second = sequence(2, no_reply_days=3)
    sequence_step_save(step=second, fields={"is_enabled": False})
    lead = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=1, next_send_at=None,
                       last_contacted_at=timezone.now() - timedelta(days=4))

    assert leads_no_reply_timeout() == {"nurture": 1, "dead": 0}
    lead.refresh_from_db()
    assert lead.status == Lead.Status.NURTURE


def test_after_a_deletion_the_planner_sends_each_lead_the_step_after_the_one_it_had():
    first, second, third = sequence(3)
    emails_from(first, 1)
    lead = LeadFactory(campaign=first.campaign, status=Lead.Status.IN_SEQUENCE, current_step=1,
                       next_send_at=timezone.now() - timedelta(minutes=1))

    sequence_step_delete(step=second)
    outreach_plan()

    assert OutboundEmail.objects.get(lead=lead).step == third


# -- the API -------------------------------------------------------------------------------------------------

def step_url(step: SequenceStep) -> str:
    return reverse("cam-api:campaign-step-detail", kwargs={"campaign_pk": step.campaign_id, "pk": step.pk})


def test_the_api_deletes_an_unused_step_and_moves_the_later_ones_up():
    _, second, _ = sequence(3)

    response = client_with_key().delete(step_url(second))

    assert response.status_code == 204
    assert positions(second.campaign) == [("Body 1", 1), ("Body 3", 2)]


def test_the_api_keeps_a_step_that_has_emails_and_disables_it_instead():
    first, second, _ = sequence(3)
    emails_from(second, 340)
    api = client_with_key()

    refused = api.delete(step_url(second))
    disabled = api.patch(step_url(second), {"is_enabled": False}, format="json")

    assert (refused.status_code, refused.json()) == (409, {"detail": "Step 2 has 340 emails; disable it instead."})
    assert (disabled.status_code, disabled.json()["is_enabled"]) == (200, False)
    assert positions(first.campaign) == [("Body 1", 1), ("Body 2", 2), ("Body 3", 3)]
    assert list(first.campaign.steps.filter(is_enabled=False)) == [second]


def test_disabling_a_step_through_the_api_cancels_its_emails_still_waiting():
    first, second, third = sequence(3)
    waiting, queued, held = queued_for_step_two(first, second)

    assert client_with_key().patch(step_url(second), {"is_enabled": False}, format="json").status_code == 200

    assert_step_two_cancelled_and_its_lead_gets_step_three(waiting, queued, held, third)


def test_the_api_refuses_disabling_the_first_step_when_the_next_has_no_subject():
    first, second = sequence(2)
    SequenceStep.objects.filter(pk=second.pk).update(subject_template="")

    response = client_with_key().patch(step_url(first), {"is_enabled": False}, format="json")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("Step 2 would become the campaign's first email")


# -- the campaign page's Sequence tab ------------------------------------------------------------------------

def _inline(data: dict, position: int) -> str:
    return next(key[:-len("-position")] for key, value in data.items()
                if key.startswith("steps-") and key.endswith("-position") and value == str(position))


def test_the_campaign_page_refuses_deleting_a_step_that_has_emails(admin_client):
    first, second, _ = sequence(3)
    emails_from(second, 340)
    data = change_form_data(admin_client, first.campaign)

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[first.campaign_id]),
                                 {**data, f"{_inline(data, 2)}-DELETE": "on"})

    assert response.status_code == 200
    errors = [str(error) for inline in response.context["inline_admin_formsets"]
              for error in inline.formset.non_form_errors()]
    assert errors == ["Step 2 has 340 emails; disable it instead."]
    assert positions(first.campaign) == [("Body 1", 1), ("Body 2", 2), ("Body 3", 3)]


def test_the_campaign_page_deletes_an_unused_step_and_saves_the_others_edits_in_the_same_go(admin_client):
    first, _, _, fourth = sequence(4)
    data = change_form_data(admin_client, first.campaign)
    changes = {f"{_inline(data, 2)}-DELETE": "on", f"{_inline(data, 3)}-body_template": "Body 3, edited",
               f"{_inline(data, 4)}-delay_days": "9"}

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[first.campaign_id]), {**data, **changes})

    assert response.status_code == 302
    assert positions(first.campaign) == [("Body 1", 1), ("Body 3, edited", 2), ("Body 4", 3)]
    fourth.refresh_from_db()
    assert (fourth.position, fourth.delay_days) == (3, 9)


def test_the_campaign_page_disables_a_step_with_its_checkbox(admin_client):
    first, _ = sequence(2)
    data = change_form_data(admin_client, first.campaign)
    del data[f"{_inline(data, 2)}-is_enabled"]  # an unticked checkbox is not posted

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[first.campaign_id]), data)

    assert response.status_code == 302
    assert list(first.campaign.steps.order_by("position").values_list("is_enabled", flat=True)) == [True, False]


def test_disabling_a_step_on_the_campaign_page_cancels_its_emails_still_waiting(admin_client):
    first, second, third = sequence(3)
    waiting, queued, held = queued_for_step_two(first, second)
    data = change_form_data(admin_client, first.campaign)
    del data[f"{_inline(data, 2)}-is_enabled"]

    assert admin_client.post(reverse("admin:cam_campaign_change", args=[first.campaign_id]), data).status_code == 302

    assert_step_two_cancelled_and_its_lead_gets_step_three(waiting, queued, held, third)


def test_disabling_a_step_on_its_own_page_cancels_its_emails_still_waiting(admin_client):
    first, second, third = sequence(3)
    waiting, queued, held = queued_for_step_two(first, second)
    url = reverse("admin:cam_sequencestep_change", args=[second.pk])
    page = admin_client.get(url)
    data = {name: value for name, value in page.context["adminform"].form.initial.items() if value is not None}
    data.update(campaign=second.campaign_id, is_enabled="")
    data.pop("is_enabled")

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert_step_two_cancelled_and_its_lead_gets_step_three(waiting, queued, held, third)


# -- the steps' own pages ------------------------------------------------------------------------------------

def test_the_step_page_shows_why_a_step_that_has_emails_is_kept_and_does_not_delete_it(admin_client):
    _, second, _ = sequence(3)
    emails_from(second, 340)
    url = reverse("admin:cam_sequencestep_delete", args=[second.pk])

    page = admin_client.get(url)
    posted = admin_client.post(url, {"post": "yes"})

    assert page.status_code == posted.status_code == 200
    text = page.content.decode()
    assert "This step is kept:" in text
    assert "Step 2 has 340 emails; disable it instead." in text
    assert "protected related objects" not in text  # not the list of 340 emails
    assert SequenceStep.objects.filter(pk=second.pk).exists()


def test_the_step_page_deletes_an_unused_step_and_moves_the_later_ones_up(admin_client):
    _, second, _ = sequence(3)

    response = admin_client.post(reverse("admin:cam_sequencestep_delete", args=[second.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert positions(second.campaign) == [("Body 1", 1), ("Body 3", 2)]


def test_the_steps_list_deletes_the_chosen_steps_or_none_of_them_saying_why(admin_client):
    first, second, third, _ = sequence(4)
    other = sequence(2)
    emails_from(other[1], 1)
    changelist = reverse("admin:cam_sequencestep_changelist")

    refused = admin_client.post(changelist, {"action": "delete_selected", "post": "yes",
                                             "_selected_action": [second.pk, other[1].pk, other[0].pk]})

    assert refused.status_code == 200
    text = refused.content.decode()
    assert "Nothing was deleted: these steps are kept." in text
    assert f"{other[0].campaign.name}: Step 2 has 1 email; disable it instead." in text
    assert SequenceStep.objects.count() == 6

    deleted = admin_client.post(changelist, {"action": "delete_selected", "post": "yes",
                                             "_selected_action": [first.pk, third.pk]})

    assert deleted.status_code == 302
    assert positions(first.campaign) == [("Body 2", 1), ("Body 4", 2)]
    assert positions(other[0].campaign) == [("Body 1", 1), ("Body 2", 2)]
