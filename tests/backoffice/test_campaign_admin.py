"""Campaign actions and form validation in the back office."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from cam.campaigns import campaigns_pause
from cam.models import Campaign, SequenceStep
from tests import factories

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:cam_campaign_changelist")


def act(client, action: str, *campaigns):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [c.pk for c in campaigns]}, follow=True)


def test_it_pauses_active_campaigns_with_who_did_it_and_leaves_drafts_alone(admin_client):
    active = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    draft = factories.CampaignFactory(status=Campaign.Status.DRAFT)
    response = act(admin_client, "pause", active, draft)
    active.refresh_from_db()
    draft.refresh_from_db()
    assert (active.status, draft.status) == ("PAUSED", "DRAFT")
    assert active.status_reason == f"Paused by staff:{admin_client.user.username}"
    assert active.status_changed_at is not None
    text = response.content.decode()
    assert "1 campaign(s) paused." in text
    assert "1 left as they were: only Active, Degraded campaigns can be paused." in text


def test_it_resumes_paused_and_degraded_campaigns(admin_client):
    paused = factories.CampaignFactory(status=Campaign.Status.PAUSED, status_reason="Bounce rate 7.1% > 5%")
    degraded = factories.CampaignFactory(status=Campaign.Status.DEGRADED)
    act(admin_client, "resume", paused, degraded)
    assert set(Campaign.objects.values_list("status", flat=True)) == {"ACTIVE"}
    paused.refresh_from_db()
    assert paused.status_reason.startswith("Resumed by staff:")


def test_it_activates_a_draft(admin_client):
    draft = factories.CampaignFactory(status=Campaign.Status.DRAFT)
    act(admin_client, "activate", draft)
    draft.refresh_from_db()
    assert draft.status == "ACTIVE"


def campaign_form(**overrides) -> dict:
    data = {
        "name": "Logistics Q1", "description": "", "icp_industries": "logistics, freight, logistics",
        "icp_title_keywords": "head of, coo", "icp_countries": "DE, AT", "icp_company_size_min": "50",
        "icp_company_size_max": "5000", "weight_industry": "30", "weight_title": "30", "weight_country": "20",
        "weight_company_size": "20", "penalty_free_mail": "20", "penalty_role_account": "30", "min_score": "60",
        "send_days": ["1", "2", "3", "4", "5"], "send_start_hour": "9", "send_end_hour": "17",
        "timezone": "Europe/Berlin", "daily_cap": "150", "no_reply_days": "7", "no_reply_outcome": "NURTURE",
        "out_of_office_days": "7", "soft_bounce_limit": "3",
        "max_hard_bounce_rate": "5", "max_complaint_rate": "0.3",
        "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0",
        "steps-0-position": "1", "steps-0-delay_days": "0", "steps-0-delay_hours": "0", "steps-0-is_enabled": "on",
        "steps-0-subject_template": "Hello {{ first_name }}", "steps-0-body_template": "Hi there",
        "steps-0-html_template": "",
        "sources-TOTAL_FORMS": "0", "sources-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_it_creates_a_campaign_with_lists_edited_as_text_and_its_first_step(admin_client):
    response = admin_client.post(reverse("admin:cam_campaign_add"), campaign_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Logistics Q1")
    assert campaign.icp_industries == ["logistics", "freight"]
    assert campaign.icp_countries == ["DE", "AT"]
    assert campaign.send_days == [1, 2, 3, 4, 5]
    assert campaign.status == "DRAFT"
    assert SequenceStep.objects.get(campaign=campaign).subject_template == "Hello {{ first_name }}"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"send_start_hour": "18"}, "send_end_hour", "The send window must end after it starts"),
        ({"icp_company_size_min": "900", "icp_company_size_max": "10"}, "icp_company_size_max",
         "“Company size to” must be at least “company size from”."),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus is not a known time zone"),
        ({"min_score": "140"}, "min_score", "Ensure this value is less than or equal to 100."),
        ({"send_days": []}, "send_days", "This field is required."),
    ],
)
def test_it_refuses_a_bad_campaign_with_a_message_on_the_field(admin_client, overrides, field, message):
    response = admin_client.post(reverse("admin:cam_campaign_add"), campaign_form(**overrides))
    assert response.status_code == 200
    assert any(message in error for error in response.context["adminform"].form.errors[field])
    assert not Campaign.objects.exists()


def change_form_data(client, campaign: Campaign, **overrides) -> dict:
    """What the change page posts back unchanged (the campaign and each inline as shown), with ``overrides``."""
    context = client.get(reverse("admin:cam_campaign_change", args=[campaign.pk])).context
    forms = [context["adminform"].form]
    data: dict = {}
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        forms.extend(formset.forms)
        management = formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            key = form.add_prefix(name)
            data[key] = ("on" if value is True else [str(item) for item in value] if isinstance(value, list | tuple)
                         else str(value))
    data.update(overrides)
    return data


def test_an_edit_in_the_admin_never_writes_back_the_status_it_read(admin_client, monkeypatch):
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE, description="before")
    factories.SequenceStepFactory(campaign=campaign, position=1)
    data = change_form_data(admin_client, campaign, description="after")
    # A pause lands while the edit is being handled: after the admin read the campaign, before it saves.
    from cam.admin.campaigns import CampaignForm

    original_clean = CampaignForm.clean

    def clean_while_paused(form):
        campaigns_pause(campaign_ids=[campaign.pk], reason="Paused by staff:other")
        return original_clean(form)

    monkeypatch.setattr(CampaignForm, "clean", clean_while_paused)

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert (campaign.status, campaign.status_reason, campaign.description) == (
        "PAUSED", "Paused by staff:other", "after")


def test_the_admin_refuses_deleting_the_first_step_when_the_next_has_no_subject(admin_client):
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    factories.SequenceStepFactory(campaign=campaign, position=1, subject_template="Hello")
    factories.SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    data = change_form_data(admin_client, campaign)
    first = next(key[:-len("-position")] for key, value in data.items()
                 if key.startswith("steps-") and key.endswith("-position") and value == "1")

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]),
                                 {**data, f"{first}-DELETE": "on"})

    assert response.status_code == 200
    errors = [str(error) for inline in response.context["inline_admin_formsets"]
              for error in inline.formset.non_form_errors()]
    assert errors == ["Step 2 would become the campaign's first email, and it has no subject; give it one first "
                      "(follow-ups reuse the first email's subject)."]
    assert list(campaign.steps.values_list("position", flat=True)) == [1, 2]


def test_the_admin_deletes_the_first_step_when_the_next_has_a_subject(admin_client):
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    factories.SequenceStepFactory(campaign=campaign, position=1, subject_template="Hello")
    factories.SequenceStepFactory(campaign=campaign, position=2, subject_template="Still there?")
    data = change_form_data(admin_client, campaign)
    first = next(key[:-len("-position")] for key, value in data.items()
                 if key.startswith("steps-") and key.endswith("-position") and value == "1")

    response = admin_client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]),
                                 {**data, f"{first}-DELETE": "on"})

    assert response.status_code == 302
    assert list(campaign.steps.values_list("subject_template", "position")) == [("Still there?", 1)]


def test_the_admin_actions_name_the_staff_user_as_the_api_does(admin_client):
    paused = factories.CampaignFactory(status=Campaign.Status.PAUSED)
    draft = factories.CampaignFactory(status=Campaign.Status.DRAFT)
    act(admin_client, "resume", paused)
    act(admin_client, "activate", draft)
    paused.refresh_from_db()
    draft.refresh_from_db()
    username = admin_client.user.username
    assert (paused.status_reason, draft.status_reason) == (f"Resumed by staff:{username}",
                                                           f"Activated by staff:{username}")


def staff_with(client, *codenames):
    user = factories.UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    return client


def test_the_step_preview_shows_leads_only_to_staff_who_may_view_leads(client, admin_client):
    step = factories.SequenceStepFactory()
    lead = factories.LeadFactory(campaign=step.campaign, email="anna@brightlane.example.com")
    preview = reverse("admin:cam_sequencestep_preview", args=[step.pk])
    campaign_page = reverse("admin:cam_campaign_change", args=[step.campaign.pk])
    assert lead.email in admin_client.get(preview).content.decode()

    editor = staff_with(client, "view_campaign", "change_campaign", "view_sequencestep", "change_sequencestep")
    assert editor.get(preview).status_code == 403
    page = editor.get(campaign_page)
    assert page.status_code == 200 and preview not in page.content.decode()

    reader = staff_with(client, "view_campaign", "view_sequencestep", "view_lead")
    assert lead.email in reader.get(preview).content.decode()
    assert preview in reader.get(campaign_page).content.decode()
