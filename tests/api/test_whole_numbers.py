"""Ids and counts are whole numbers as their channel writes them: JSON integers in bodies, ASCII digits
in query strings and paths. Anything an int() would also read (1.0, "1", " 1", "١") is refused, naming
the field, or matches no route."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from cam.models import Lead
from tests import factories

NOT_JSON_INTEGERS = [1.0, "1", " 1", "1 ", "1.0", "\u0661", True]
NOT_QUERY_DIGITS = ["1.0", " 1", "1 ", "+1", "\u0661", "1e0", "0x1", ""]


@pytest.mark.parametrize("value", NOT_JSON_INTEGERS)
def test_a_lead_campaign_must_be_a_json_integer(api, value):
    campaign = factories.CampaignFactory()
    given = value if value is True else (value.replace("1", str(campaign.pk)) if isinstance(value, str)
                                         else float(campaign.pk))

    response = api.post("/api/cam/leads/", {"campaign": given, "email": "ann@example.com"}, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["campaign"]
    assert not Lead.objects.exists()


def test_a_lead_campaign_as_a_json_integer_is_accepted(api):
    campaign = factories.CampaignFactory()
    response = api.post("/api/cam/leads/", {"campaign": campaign.pk, "email": "ann@example.com"}, format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("value", ["1", 1.0, " 1"])
def test_a_bulk_item_campaign_must_be_a_json_integer(api, value):
    campaign = factories.CampaignFactory()
    given = float(campaign.pk) if value == 1.0 else value.replace("1", str(campaign.pk))

    response = api.post("/api/cam/leads/bulk/", {"leads": [
        {"campaign": given, "email": "ann@example.com"}, {"campaign": campaign.pk, "email": "bob@example.com"},
    ]}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created_count"], body["error_count"]) == (1, 1)
    assert body["errors"][0]["index"] == 0
    assert list(body["errors"][0]["errors"]) == ["campaign"]


@pytest.mark.parametrize("field", ["campaign", "max_leads"])
@pytest.mark.parametrize("value", ["1", 1.0, " 1"])
def test_a_job_run_campaign_and_max_leads_must_be_json_integers(api, field, value):
    campaign = factories.CampaignFactory()
    given = float(campaign.pk) if value == 1.0 else value.replace("1", str(campaign.pk))

    response = api.post("/api/cam/jobs/harvest/run/", {field: given}, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field]


@pytest.mark.parametrize(("field", "value"), [("daily_cap", "150"), ("daily_cap", 150.0), ("min_score", " 60"),
                                              ("send_days", ["1"]), ("send_days", [1.0])])
def test_campaign_counts_must_be_json_integers(api, field, value):
    campaign = factories.CampaignFactory()
    response = api.patch(f"/api/cam/campaigns/{campaign.pk}/", {field: value}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field]


@pytest.mark.parametrize("field", ["position", "delay_days"])
def test_step_numbers_must_be_json_integers(api, field):
    step = factories.SequenceStepFactory(position=1)
    response = api.patch(f"/api/cam/campaigns/{step.campaign_id}/steps/{step.pk}/", {field: "1"}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field]


@pytest.mark.parametrize("path", ["leads/", "replies/", "alerts/", "jobs/executions/"])
@pytest.mark.parametrize("value", NOT_QUERY_DIGITS)
def test_an_id_filter_takes_ascii_digits_only(read_api, path, value):
    response = read_api.get(f"/api/cam/{path}", {"campaign": value})
    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["campaign"]


@pytest.mark.parametrize("path", ["leads/", "replies/", "alerts/", "jobs/executions/"])
def test_an_id_filter_in_digits_filters(read_api, path):
    campaign = factories.CampaignFactory()
    response = read_api.get(f"/api/cam/{path}", {"campaign": str(campaign.pk)})
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("value", ["50.0", " 50", "\u0665\u0660"])
def test_a_score_filter_takes_ascii_digits_only(read_api, value):
    response = read_api.get("/api/cam/leads/", {"score_min": value})
    assert response.status_code == 400
    assert list(response.json()) == ["score_min"]


@pytest.mark.parametrize("encoded", ["%D9%A1", "%201", "1%20", "+1", "%2B1", "%EF%BC%91", "1.0"])
@pytest.mark.parametrize("path", ["campaigns/{}/", "campaigns/{}/steps/", "leads/{}/", "replies/{}/",
                                  "suppressions/{}/", "alerts/{}/"])
def test_a_path_id_in_anything_but_ascii_digits_is_a_json_404(read_api, path, encoded):
    campaign = factories.CampaignFactory()  # there to be found by mistake
    response = read_api.get(f"/api/cam/{path.format(encoded.replace('1', str(campaign.pk)))}")
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")


def test_a_step_id_in_anything_but_ascii_digits_is_a_json_404(read_api):
    step = factories.SequenceStepFactory(position=1)
    arabic_indic = quote("".join(chr(0x660 + int(digit)) for digit in str(step.pk)))
    response = read_api.get(f"/api/cam/campaigns/{step.campaign_id}/steps/{arabic_indic}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_path_id_in_ascii_digits_reads_the_object(read_api):
    campaign = factories.CampaignFactory()
    assert read_api.get(f"/api/cam/campaigns/{campaign.pk}/").json()["id"] == campaign.pk
    assert read_api.get(f"/api/cam/campaigns/{2**70}/").status_code == 404
