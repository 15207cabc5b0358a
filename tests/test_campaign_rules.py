"""A campaign's cross-field rules live on the model: every door refuses the same input with the same
message on the same field — the model itself, the database's copy of the rule, the services, the admin
and the API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from cam.campaigns import campaign_create, campaign_update
from cam.models import Campaign
from tests.api.conftest import client_with_key
from tests.backoffice.test_campaign_admin import campaign_form, change_form_data
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

COMPANY_SIZE = "“Company size to” must be at least “company size from”."
SEND_WINDOW = "The send window must end after it starts: “send end hour” must be later than “send start hour”."

BAD_INPUT = [
    pytest.param({"icp_company_size_min": 900, "icp_company_size_max": 10}, "icp_company_size_max", COMPANY_SIZE,
                 id="company-size-backwards"),
    pytest.param({"send_start_hour": 17, "send_end_hour": 9}, "send_end_hour", SEND_WINDOW, id="window-backwards"),
    pytest.param({"send_start_hour": 12, "send_end_hour": 12}, "send_end_hour", SEND_WINDOW, id="window-empty"),
]
GOOD = {"send_start_hour": 9, "send_end_hour": 17, "icp_company_size_min": 10, "icp_company_size_max": 500}


def _django_errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        call()
    return refused.value.message_dict


def model_full_clean(bad: dict) -> dict[str, list[str]]:
    return _django_errors(lambda: Campaign(name="Rules", **bad).full_clean())


def service_create(bad: dict) -> dict[str, list[str]]:
    return _django_errors(lambda: campaign_create(fields={"name": "Rules", **bad}))


def service_update(bad: dict) -> dict[str, list[str]]:
    campaign = CampaignFactory(name="Rules", **GOOD)
    return _django_errors(lambda: campaign_update(campaign=campaign, fields=bad))


def _admin_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200
    return {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}


def admin_add(bad: dict, client) -> dict[str, list[str]]:
    data = campaign_form(name="Rules", **{name: str(value) for name, value in bad.items()})
    return _admin_errors(client.post(reverse("admin:cam_campaign_add"), data))


def admin_change(bad: dict, client) -> dict[str, list[str]]:
    campaign = CampaignFactory(name="Rules", **GOOD)
    data = change_form_data(client, campaign, **{name: str(value) for name, value in bad.items()})
    return _admin_errors(client.post(reverse("admin:cam_campaign_change", args=[campaign.pk]), data))


def api_create(bad: dict) -> dict[str, list[str]]:
    response = client_with_key().post(reverse("cam-api:campaign-list"), {"name": "Rules", **bad}, format="json")
    assert response.status_code == 400
    return response.json()


def api_patch(bad: dict) -> dict[str, list[str]]:
    campaign = CampaignFactory(name="Rules", **GOOD)
    response = client_with_key().patch(reverse("cam-api:campaign-detail", args=[campaign.pk]), bad, format="json")
    assert response.status_code == 400
    return response.json()


DOORS = [model_full_clean, service_create, service_update, api_create, api_patch]
ADMIN_DOORS = [admin_add, admin_change]


@pytest.mark.parametrize(("bad", "field", "message"), BAD_INPUT)
@pytest.mark.parametrize("door", DOORS, ids=lambda door: door.__name__)
def test_every_door_refuses_a_backward_range_with_the_same_message_on_the_same_field(door, bad, field, message):
    assert door(bad) == {field: [message]}
    assert not Campaign.objects.filter(name="Rules").exclude(**GOOD).exists()


@pytest.mark.parametrize(("bad", "field", "message"), BAD_INPUT)
@pytest.mark.parametrize("door", ADMIN_DOORS, ids=lambda door: door.__name__)
def test_the_admin_refuses_it_with_the_same_message_on_the_same_field(admin_client, door, bad, field, message):
    assert door(bad, admin_client) == {field: [message]}
    assert not Campaign.objects.filter(name="Rules").exclude(**GOOD).exists()


@pytest.mark.parametrize(("bad", "field", "message"), BAD_INPUT)
def test_the_databases_copy_of_the_rule_says_the_same(bad, field, message):
    campaign = Campaign(name="Rules", **bad)
    with pytest.raises(ValidationError) as refused:
        campaign.validate_constraints()
    assert refused.value.messages == [message]
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(name="Rules", **bad)


def test_a_patch_is_checked_against_the_stored_values_and_the_stored_campaign_is_kept():
    campaign = CampaignFactory(send_start_hour=9, send_end_hour=17)

    response = client_with_key().patch(reverse("cam-api:campaign-detail", args=[campaign.pk]),
                                       {"send_start_hour": 18, "daily_cap": 5}, format="json")

    assert (response.status_code, response.json()) == (400, {"send_end_hour": [SEND_WINDOW]})
    campaign.refresh_from_db()
    assert (campaign.send_start_hour, campaign.daily_cap) == (9, 200)


@pytest.mark.parametrize("good", [
    {"icp_company_size_min": 50, "icp_company_size_max": 50},
    {"icp_company_size_min": 50, "icp_company_size_max": None},
    {"icp_company_size_min": None, "icp_company_size_max": 50},
    {"send_start_hour": 0, "send_end_hour": 24},
    {"send_start_hour": 16, "send_end_hour": 17},
])
def test_every_door_accepts_a_range_that_holds(good):
    Campaign(name="Rules", **good).full_clean()
    created = client_with_key().post(reverse("cam-api:campaign-list"), {"name": "Rules", **good}, format="json")
    assert created.status_code == 201, created.json()
    assert campaign_create(fields={"name": "Rules too", **good}).pk
