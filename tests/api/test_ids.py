"""Ids in paths: integers in the schema, and an id that is not a number, or too large for any row, is a
JSON 404 on every route that takes one (never a 500: PostgreSQL overflows past a bigint)."""

from __future__ import annotations

import pytest

from tests.api.test_schema import generated_schema
from tests.factories import CampaignFactory, SequenceStepFactory

BAD_IDS = ["abc", "0", "-1", str(2**63 - 1), str(2**63), str(2**70), str(10**30)]


def test_every_object_id_in_a_path_is_an_integer_in_the_schema():
    ids = {(path, parameter["name"]): parameter["schema"]
           for path, operations in generated_schema()["paths"].items()
           for operation in operations.values() if isinstance(operation, dict)
           for parameter in operation.get("parameters", []) if parameter["in"] == "path"}
    object_ids = {key: schema for key, schema in ids.items() if key[1] in {"id", "campaign_pk"}}
    assert object_ids, "no path takes an id"
    assert {path for path, _ in object_ids} >= {"/api/cam/campaigns/{id}/", "/api/cam/leads/{id}/",
                                                "/api/cam/campaigns/{campaign_pk}/steps/{id}/"}
    for key, schema in object_ids.items():
        assert schema.get("type") == "integer", key
        assert "pattern" not in schema, key


def assert_json_404(response) -> None:
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


@pytest.mark.parametrize("pk", BAD_IDS)
@pytest.mark.parametrize(("method", "path"), [
    ("get", "campaigns/{}/"),
    ("patch", "campaigns/{}/"),
    ("get", "campaigns/{}/metrics/"),
    ("post", "campaigns/{}/pause/"),
    ("get", "campaigns/{}/steps/"),
    ("post", "campaigns/{}/steps/"),
    ("get", "leads/{}/"),
    ("post", "leads/{}/status/"),
    ("get", "replies/{}/"),
    ("post", "replies/{}/reclassify/"),
    ("get", "suppressions/{}/"),
    ("delete", "suppressions/{}/"),
    ("get", "alerts/{}/"),
])
def test_an_unknown_non_numeric_or_huge_id_is_a_json_404(api, method, path, pk):
    assert_json_404(getattr(api, method)(f"/api/cam/{path.format(pk)}", {}, format="json"))


@pytest.mark.parametrize("pk", BAD_IDS)
def test_a_bad_step_id_under_a_real_campaign_and_a_bad_campaign_over_a_real_step_are_json_404s(api, pk):
    step = SequenceStepFactory(campaign=CampaignFactory())
    assert_json_404(api.get(f"/api/cam/campaigns/{step.campaign_id}/steps/{pk}/"))
    assert_json_404(api.delete(f"/api/cam/campaigns/{step.campaign_id}/steps/{pk}/"))
    assert_json_404(api.get(f"/api/cam/campaigns/{pk}/steps/{step.pk}/"))
