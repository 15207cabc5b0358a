"""A body's strings and booleans are JSON strings and JSON booleans, for every text and yes/no field of
every body (cam.api.serializers.StrictMixin): DRF alone would read ``0`` as the text "0" and ``0`` or
"yes" as a boolean. Query strings, all text, keep reading "true" and "7"."""

from __future__ import annotations

import pytest

from cam.jobs.registry import job_names
from cam.models import Campaign, Lead, Suppression
from tests.api.test_schema import generated_schema
from tests.factories import CampaignFactory, InboundEmailFactory, LeadFactory, MailboxFactory

pytestmark = pytest.mark.django_db

NOT_A_STRING = ["Not a valid string."]
NOT_A_BOOLEAN = ["Must be a valid boolean."]


@pytest.mark.parametrize("value", [0, 1.5, True, {"text": "why"}, ["why"]],
                         ids=["integer", "float", "boolean", "object", "list"])
def test_a_lead_status_reason_must_be_a_string(api, value):
    lead = LeadFactory(status=Lead.Status.QUALIFIED)

    response = api.post(f"/api/cam/leads/{lead.pk}/status/", {"status": "DEAD", "reason": value}, format="json")

    assert response.status_code == 400
    assert response.json() == {"reason": NOT_A_STRING}
    lead.refresh_from_db()
    assert lead.status == Lead.Status.QUALIFIED


def test_a_campaign_status_change_reason_must_be_a_string(api):
    campaign = CampaignFactory(status=Campaign.Status.ACTIVE)

    response = api.post(f"/api/cam/campaigns/{campaign.pk}/pause/", {"reason": 0}, format="json")

    assert response.status_code == 400
    assert response.json() == {"reason": NOT_A_STRING}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


def test_suppression_fields_must_be_strings_each_named(api):
    response = api.post("/api/cam/suppressions/", {"email": 5, "note": 1.5}, format="json")

    assert response.status_code == 400
    assert response.json() == {"email": NOT_A_STRING, "note": NOT_A_STRING}
    assert not Suppression.objects.exists()


def test_model_derived_text_fields_and_lists_of_text_are_strict_too(api):
    campaign = CampaignFactory(name="Kept")

    response = api.patch(f"/api/cam/campaigns/{campaign.pk}/", {"name": 7, "icp_industries": ["software", 3]},
                         format="json")

    assert response.status_code == 400
    assert response.json() == {"name": NOT_A_STRING, "icp_industries": {"1": NOT_A_STRING}}
    campaign.refresh_from_db()
    assert campaign.name == "Kept"


def test_a_lead_email_must_be_a_string(api):
    campaign = CampaignFactory()

    response = api.post("/api/cam/leads/", {"campaign": campaign.pk, "email": 12345}, format="json")

    assert response.status_code == 400
    assert response.json() == {"email": NOT_A_STRING}


@pytest.mark.parametrize("field", ["wait", "force"])
@pytest.mark.parametrize("value", [0, 1, "true", "yes", "off"])
def test_a_job_run_flag_must_be_a_json_boolean(api, field, value):
    response = api.post("/api/cam/jobs/score/run/", {field: value}, format="json")

    assert response.status_code == 400
    assert response.json() == {field: NOT_A_BOOLEAN}


def test_null_stays_for_the_field_to_judge(api):
    lead = LeadFactory(status=Lead.Status.QUALIFIED)

    response = api.post(f"/api/cam/leads/{lead.pk}/status/", {"status": "DEAD", "reason": None}, format="json")

    assert response.status_code == 400
    assert response.json() == {"reason": ["This field may not be null."]}


def test_query_strings_keep_reading_text_as_booleans_and_numbers(api):
    mailbox = MailboxFactory()
    InboundEmailFactory(mailbox=mailbox, processed_at=None)

    response = api.get("/api/cam/replies/?unprocessed=true")

    assert response.status_code == 200, response.json()
    assert response.json()["count"] == 1


def real_job_names() -> list[str]:
    return cam_only(job_names())


def cam_only(names: list[str]) -> list[str]:
    """CAM's jobs among ``names``: other tests register jobs of their own (``test_…``) as their modules are
    imported, so what the schema and the errors list depends on which tests ran first."""
    return [name for name in names if not name.startswith("test_")]


def test_the_job_name_in_the_run_path_is_an_enum_of_the_jobs():
    operation = generated_schema()["paths"]["/api/cam/jobs/{name}/run/"]["post"]
    name = next(parameter for parameter in operation["parameters"] if parameter["name"] == "name")
    assert name["in"] == "path"
    assert cam_only(name["schema"]["enum"]) == real_job_names()
    assert {"harvest", "score", "qualify", "outreach", "inbox", "worker_cycle", "no_reply_timeouts",
            "watchdog"} <= set(real_job_names())


def test_the_executions_job_filter_is_an_enum_of_the_jobs(api):
    operation = generated_schema()["paths"]["/api/cam/jobs/executions/"]["get"]
    job = next(parameter for parameter in operation["parameters"] if parameter["name"] == "job")
    assert cam_only(job["schema"]["enum"]) == real_job_names()
    response = api.get("/api/cam/jobs/executions/?job=nope")
    assert response.status_code == 400
    [error] = response.json()["job"]
    prefix = "Unknown job; known jobs: "
    assert error.startswith(prefix) and error.endswith(".")
    assert cam_only(error.removeprefix(prefix).removesuffix(".").split(", ")) == real_job_names()


def test_a_bulk_request_schema_states_its_item_bounds(settings):
    body = generated_schema()["components"]["schemas"]["LeadBulkInputRequest"]["properties"]["leads"]
    assert body["minItems"] == 1
    assert body["maxItems"] == settings.AICMO_CAM_API_BULK_MAX_ITEMS
    assert body["items"] == {"$ref": "#/components/schemas/LeadInputRequest"}


def test_rules_the_schema_cannot_state_are_in_the_descriptions():
    components = generated_schema()["components"]["schemas"]
    campaign = components["CampaignRequest"]["properties"]
    assert "Unique" in campaign["name"]["description"]
    assert "IANA" in campaign["timezone"]["description"]
    assert "send_start_hour" in campaign["send_end_hour"]["description"]
    assert "icp_company_size_min" in campaign["icp_company_size_max"]["description"]
    lead = components["LeadInputRequest"]["properties"]
    assert "normalised" in lead["email"]["description"]
    assert "IANA" in lead["timezone"]["description"]
    step = components["CampaignStepRequest"]["properties"]
    assert "unique" in step["position"]["description"]
    assert "template" in step["body_template"]["description"]
