"""A campaign's first step is its lowest position, whatever the gaps, everywhere: it needs a subject at
every door (the services, the API, the admin's campaign page and its step page), the preview shows it as
the first email, and the sender sends it first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from cam.models import Lead, OutboundEmail, SequenceStep
from cam.models.campaigns import first_step, step_after
from cam.outreach.preview import preview_step
from cam.sequences import FirstStepWithoutSubject, sequence_step_delete, sequence_step_save
from tests.api.conftest import client_with_key
from tests.backoffice.test_campaign_admin import change_form_data
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory
from tests.outreach.test_sending import due_lead, send_now, smtp_mailbox

pytestmark = pytest.mark.django_db

NEEDS_SUBJECT = "The first email needs a subject; follow-ups reuse it as “Re: …”."
STEP_3_WOULD_BE_FIRST = ("Step 3 would become the campaign's first email, and it has no subject; give it one first "
                         "(follow-ups reuse the first email's subject).")


def test_the_first_step_is_the_lowest_position_whatever_the_gaps():
    campaign = CampaignFactory()
    last = SequenceStepFactory(campaign=campaign, position=5)
    first = SequenceStepFactory(campaign=campaign, position=2)
    second = SequenceStepFactory(campaign=campaign, position=3)
    SequenceStepFactory(position=1)  # another campaign's

    steps = list(campaign.steps.all())
    assert SequenceStep.objects.first_of(campaign) == first_step(steps) == first
    assert [step_after(steps, position) for position in range(6)] == [first, first, second, last, last, None]
    assert SequenceStep.objects.first_of(CampaignFactory()) is None


@pytest.fixture
def sequence():
    """Steps at 2 and 3, none at 1: the step at 2 is the first email."""
    campaign = CampaignFactory()
    first = SequenceStepFactory(campaign=campaign, position=2, subject_template="Hello {{ first_name }}",
                                body_template="Hi {{ first_name|default:'there' }}")
    follow_up = SequenceStepFactory(campaign=campaign, position=3, subject_template="", body_template="Still there?")
    return first, follow_up


def saved(campaign) -> list[tuple[int, str]]:
    return list(campaign.steps.order_by("position").values_list("position", "subject_template"))


# What would leave the first step without a subject: clearing the first's subject, or adding a step ahead of
# it with none. (step: "first" or None for a new one; the values sent.)
NO_SUBJECT_FIRST = [
    pytest.param("first", {"subject_template": ""}, id="clear-the-first"),
    pytest.param(None, {"position": 1, "subject_template": "", "body_template": "Hi"}, id="add-one-ahead"),
]
STEP_FIELDS = ["position", "delay_days", "delay_hours", "is_enabled", "subject_template", "body_template",
               "html_template"]


def _step_values(step: SequenceStep | None, change: dict) -> dict:
    values = {"position": 1, "delay_days": 0, "delay_hours": 0, "is_enabled": True, "subject_template": "",
              "body_template": "", "html_template": ""}
    if step is not None:
        values.update({name: getattr(step, name) for name in STEP_FIELDS})
    return {**values, **change}


def by_service(campaign, step, change, client) -> dict:
    with pytest.raises(ValidationError) as refused:
        sequence_step_save(step=step or SequenceStep(campaign=campaign), fields=change)
    return refused.value.message_dict


def by_api(campaign, step, change, client) -> dict:
    api = client_with_key()
    if step is None:
        response = api.post(reverse("cam-api:campaign-step-list", kwargs={"campaign_pk": campaign.pk}), change,
                            format="json")
    else:
        response = api.patch(reverse("cam-api:campaign-step-detail",
                                     kwargs={"campaign_pk": campaign.pk, "pk": step.pk}), change, format="json")
    assert response.status_code == 400
    return response.json()


def _inline_prefix(data: dict, position: int) -> str:
    return next(key[:-len("-position")] for key, value in data.items()
                if key.startswith("steps-") and key.endswith("-position") and value == str(position))


def by_campaign_page(campaign, step, change, client) -> dict:
    data = change_form_data(client, campaign)
    if step is None:
        index = int(data["steps-TOTAL_FORMS"])
        data["steps-TOTAL_FORMS"] = str(index + 1)
        prefix = f"steps-{index}"
        values = _step_values(None, change)
    else:
        prefix = _inline_prefix(data, step.position)
        index = int(prefix.split("-")[1])
        values = change
    data.update({f"{prefix}-{name}": str(value) for name, value in values.items()})
    response = client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.prefix == "steps"
    return {field: list(errors) for field, errors in formset.forms[index].errors.items()}


def by_step_page(campaign, step, change, client) -> dict:
    data = {"campaign": str(campaign.pk), **{name: str(value) for name, value in _step_values(step, change).items()}}
    url = (reverse("admin:cam_sequencestep_add") if step is None
           else reverse("admin:cam_sequencestep_change", args=[step.pk]))
    response = client.post(url, data)
    assert response.status_code == 200
    return {field: list(errors) for field, errors in response.context["adminform"].form.errors.items()}


DOORS = [by_service, by_api, by_campaign_page, by_step_page]


@pytest.mark.parametrize(("which", "change"), NO_SUBJECT_FIRST)
@pytest.mark.parametrize("door", DOORS, ids=lambda door: door.__name__)
def test_every_door_refuses_a_first_step_without_a_subject_when_the_first_is_at_2(admin_client, sequence, door,
                                                                                   which, change):
    first, _ = sequence
    before = saved(first.campaign)

    errors = door(first.campaign, first if which == "first" else None, change, admin_client)

    assert errors == {"subject_template": [NEEDS_SUBJECT]}
    assert saved(first.campaign) == before


def test_a_step_after_the_first_may_go_without_a_subject_at_every_door(admin_client, sequence):
    first, follow_up = sequence
    campaign = first.campaign
    sequence_step_save(step=follow_up, fields={"body_template": "Any news?"})
    api = client_with_key()
    created = api.post(reverse("cam-api:campaign-step-list", kwargs={"campaign_pk": campaign.pk}),
                       {"position": 4, "subject_template": "", "body_template": "One more"}, format="json")
    assert created.status_code == 201, created.json()
    page = admin_client.post(reverse("admin:cam_sequencestep_add"), {
        "campaign": str(campaign.pk), **{name: str(value) for name, value in _step_values(
            None, {"position": 5, "body_template": "Last one"}).items()}})
    assert page.status_code == 302, page.context["adminform"].form.errors
    assert saved(campaign) == [(2, "Hello {{ first_name }}"), (3, ""), (4, ""), (5, "")]


# What would make the follow-up at 3, which has no subject, the first: deleting or moving the step at 2.
def delete_by_service(first, client) -> str:
    with pytest.raises(FirstStepWithoutSubject) as refused:
        sequence_step_delete(step=first)
    return str(refused.value)


def move_by_service(first, client) -> str:
    with pytest.raises(FirstStepWithoutSubject) as refused:
        sequence_step_save(step=first, fields={"position": 9})
    return str(refused.value)


def _by_api(first, method: str, **body) -> str:
    url = reverse("cam-api:campaign-step-detail", kwargs={"campaign_pk": first.campaign_id, "pk": first.pk})
    response = getattr(client_with_key(), method)(url, body, format="json")
    assert response.status_code == 409
    return response.json()["detail"]


def delete_by_api(first, client) -> str:
    return _by_api(first, "delete")


def move_by_api(first, client) -> str:
    return _by_api(first, "patch", position=9)


def _by_campaign_page(first, client, **override) -> str:
    data = change_form_data(client, first.campaign)
    prefix = _inline_prefix(data, first.position)
    data.update({f"{prefix}-{name}": value for name, value in override.items()})
    response = client.post(reverse("admin:cam_campaign_change", args=[first.campaign_id]), data)
    assert response.status_code == 200
    (error,) = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    return error


def delete_by_campaign_page(first, client) -> str:
    return _by_campaign_page(first, client, DELETE="on")


def move_by_campaign_page(first, client) -> str:
    return _by_campaign_page(first, client, position="9")


def move_by_step_page(first, client) -> str:
    data = {"campaign": str(first.campaign_id),
            **{name: str(value) for name, value in _step_values(first, {"position": 9}).items()}}
    response = client.post(reverse("admin:cam_sequencestep_change", args=[first.pk]), data)
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.non_field_errors()
    return error


@pytest.mark.parametrize("door", [delete_by_service, move_by_service, delete_by_api, move_by_api,
                                  delete_by_campaign_page, move_by_campaign_page, move_by_step_page],
                         ids=lambda door: door.__name__)
def test_every_door_refuses_making_a_step_without_a_subject_the_first_with_one_message(admin_client, sequence,
                                                                                       door):
    first, _ = sequence
    before = saved(first.campaign)

    assert door(first, admin_client) == STEP_3_WOULD_BE_FIRST
    assert saved(first.campaign) == before


def test_the_preview_shows_the_step_at_2_as_the_first_email_and_the_next_as_its_reply(admin_client, sequence):
    first, follow_up = sequence
    first.campaign.mailboxes.add(MailboxFactory())
    lead = LeadFactory(campaign=first.campaign, first_name="Anna")

    assert preview_step(step=first, lead=lead).subject == "Hello Anna"
    OutboundEmailFactory(lead=lead, step=first, subject="Hello Anna", status=OutboundEmail.Status.SENT)
    assert preview_step(step=first, lead=lead).subject == "Hello Anna"  # its own subject, not a reply's
    assert preview_step(step=follow_up, lead=lead).subject == "Re: Hello Anna"
    page = admin_client.get(reverse("admin:cam_sequencestep_preview", args=[follow_up.pk])).content.decode()
    assert "Re: Hello Anna" in page


@pytest.mark.parametrize("positions", [(2, 3), (2, 5)], ids=["from-2", "with-a-gap"])
def test_the_sender_starts_at_the_lowest_position_and_follows_the_order(smtp_server, positions):
    mailbox = smtp_mailbox(smtp_server)
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24, daily_cap=100)
    owner.mailboxes.set([mailbox])
    first_at, follow_up_at = positions
    SequenceStepFactory(campaign=owner, position=follow_up_at, subject_template="", body_template="Bumping this.",
                        delay_days=2)
    SequenceStepFactory(campaign=owner, position=first_at, subject_template="{{ company }} and fewer hand-offs",
                        body_template="Hi there.")
    lead = due_lead(owner, company="Brightlane")

    assert send_now()["sent"] == 1
    lead.refresh_from_db()
    assert (lead.current_step, lead.blocked_reason) == (first_at, "")
    assert timedelta(days=2) - timedelta(minutes=1) < lead.next_send_at - timezone.now() <= timedelta(days=2)

    Lead.objects.filter(pk=lead.pk).update(next_send_at=timezone.now() - timedelta(seconds=1))
    assert send_now()["sent"] == 1
    first, second = (message.parsed for message in smtp_server.messages)
    assert (first["Subject"], second["Subject"]) == ("Brightlane and fewer hand-offs",
                                                     "Re: Brightlane and fewer hand-offs")
    assert second["In-Reply-To"].strip() == first["Message-ID"].strip()
    lead.refresh_from_db()
    assert (lead.current_step, lead.next_send_at) == (follow_up_at, None)  # the last step: the no-reply wait


def test_a_first_step_saved_without_a_subject_before_the_rule_does_not_hold_up_other_changes(admin_client):
    campaign = CampaignFactory()
    first = SequenceStepFactory(campaign=campaign, position=2, subject_template="")  # saved before the rule
    SequenceStepFactory(campaign=campaign, position=3, subject_template="")

    api = client_with_key()
    changed = api.patch(reverse("cam-api:campaign-step-detail", kwargs={"campaign_pk": campaign.pk, "pk": first.pk}),
                        {"delay_days": 1}, format="json")
    assert changed.status_code == 200, changed.json()
    page = admin_client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]),
                             change_form_data(admin_client, campaign, description="Edited"))
    assert page.status_code == 302
    campaign.refresh_from_db()
    assert campaign.description == "Edited"
    # What touches the first step's subject or place is held to the rule.
    assert by_service(campaign, first, {"position": 1}, admin_client) == {"subject_template": [NEEDS_SUBJECT]}
