"""How a request reaches the API: a chunked body, a path without its trailing slash, the API root, a
query parameter given twice."""

from __future__ import annotations

import pytest
from django.test import override_settings

from cam.models import Campaign, Lead
from tests import factories

NEW_CAMPAIGN = {"name": "Logistics Q1"}


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_a_chunked_body_without_a_length_is_refused_with_411(api, method):
    campaign = factories.CampaignFactory(description="kept")
    path = "/api/cam/campaigns/" if method == "post" else f"/api/cam/campaigns/{campaign.pk}/"

    response = getattr(api, method)(path, '{"name": "New", "description": "changed"}',
                                    content_type="application/json", HTTP_TRANSFER_ENCODING="chunked",
                                    CONTENT_LENGTH="")

    assert response.status_code == 411
    assert response["Content-Type"].startswith("application/json")
    assert "Content-Length" in response.json()["detail"]
    campaign.refresh_from_db()
    assert campaign.description == "kept"
    assert Campaign.objects.count() == 1


def test_a_chunked_request_is_refused_before_its_credentials_are_looked_at(anon_api):
    response = anon_api.post("/api/cam/leads/", "{}", content_type="application/json",
                             HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    assert response.status_code == 411


def test_a_body_with_its_length_is_read_as_usual(api):
    response = api.post("/api/cam/campaigns/", NEW_CAMPAIGN, format="json")
    assert response.status_code == 201, response.json()


def test_a_read_with_a_transfer_encoding_is_not_refused(read_api):
    assert read_api.get("/api/cam/campaigns/", HTTP_TRANSFER_ENCODING="chunked").status_code == 200


@pytest.mark.parametrize("debug", [True, False])
def test_a_post_without_the_trailing_slash_is_served_as_the_path_with_it(api, settings, debug):
    settings.DEBUG = debug
    response = api.post("/api/cam/campaigns", NEW_CAMPAIGN, format="json")
    assert response.status_code == 201, response.content
    assert Campaign.objects.get().name == "Logistics Q1"


@pytest.mark.parametrize("debug", [True, False])
def test_other_methods_without_the_trailing_slash_reach_their_route(api, settings, debug):
    settings.DEBUG = debug
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)

    assert api.get(f"/api/cam/campaigns/{campaign.pk}").json()["id"] == campaign.pk
    assert api.patch(f"/api/cam/campaigns/{campaign.pk}", {"description": "new"},
                     format="json").json()["description"] == "new"
    assert api.post(f"/api/cam/campaigns/{campaign.pk}/pause", {}, format="json").json()["status"] == "PAUSED"
    assert api.post("/api/cam/leads/bulk", {"leads": [{"campaign": campaign.pk, "email": "a@example.com"}]},
                    format="json").json()["created_count"] == 1
    assert Lead.objects.count() == 1


def test_a_list_link_without_the_slash_keeps_its_query_string(read_api):
    factories.CampaignFactory(status=Campaign.Status.PAUSED)
    factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    response = read_api.get("/api/cam/campaigns?status=PAUSED")
    assert response.status_code == 200
    assert [c["status"] for c in response.json()["results"]] == ["PAUSED"]


@pytest.mark.parametrize("debug", [True, False])
def test_a_path_without_the_slash_that_matches_nothing_is_a_json_404(api, settings, debug):
    settings.DEBUG = debug
    response = api.post("/api/cam/nothing-here", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("path", ["/api", "/api/"])
@override_settings(DEBUG=True)
def test_the_api_root_answers_json_with_or_without_the_slash(read_api, path):
    response = read_api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_a_path_merely_starting_like_the_api_is_not_the_apis(read_api):
    response = read_api.get("/apiary/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(("path", "query", "name"), [
    ("campaigns/", "status=ACTIVE&status=PAUSED", "status"),
    ("leads/", "campaign=1&campaign=2", "campaign"),
    ("leads/", "search=a&search=b", "search"),
    ("replies/", "campaign=1&campaign=1", "campaign"),
    ("jobs/executions/", "job=score&job=qualify", "job"),
    ("suppressions/", "page=1&page=2", "page"),
    ("alerts/", "page_size=5&page_size=10", "page_size"),
    ("campaigns/1/steps/", "format=json&format=json", "format"),
])
def test_a_query_parameter_given_more_than_once_is_refused_naming_it(read_api, path, query, name):
    factories.CampaignFactory()
    campaign = Campaign.objects.get()
    response = read_api.get(f"/api/cam/{path.replace('1/', f'{campaign.pk}/')}?{query}")
    assert response.status_code == 400, response.content
    assert response.json() == {name: ["Given more than once; give each query parameter once."]}
