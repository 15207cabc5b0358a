"""Bulk create: every error names items by their index in the request, whatever was refused before them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cam.models import Lead
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

BULK = reverse("cam-api:lead-bulk")


def post(api, items: list) -> dict:
    response = api.post(BULK, {"leads": items}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_duplicate_after_refused_items_names_the_first_by_its_request_index(api):
    campaign = CampaignFactory()
    items = [
        {"campaign": campaign.pk, "email": "not-an-address"},
        {"campaign": 999999, "email": "nobody@acme-q.com"},
        "not an object",
        {"campaign": campaign.pk, "email": "ok@acme-q.com", "colour": "red"},
        {"campaign": campaign.pk, "email": "also not an address"},
        {"campaign": campaign.pk, "email": "first@acme-q.com"},
        {"campaign": campaign.pk},
        {"campaign": campaign.pk, "email": "dup2@acme-q.com"},
        {"campaign": campaign.pk, "email": "DUP2@acme-q.com"},
    ]

    body = post(api, items)

    errors = {error["index"]: error["errors"] for error in body["errors"]}
    assert errors[8] == {"email": ["duplicate: dup2@acme-q.com is already item 7 of this request"]}
    assert sorted(errors) == [0, 1, 2, 3, 4, 6, 8]
    assert [(c["index"], c["lead"]["email"]) for c in body["created"]] == [
        (5, "first@acme-q.com"), (7, "dup2@acme-q.com")]


def test_every_later_copy_names_the_first_item_given(api):
    campaign = CampaignFactory()
    items = [None, {"campaign": campaign.pk, "email": "anna@acme-q.com"}, None,
             {"campaign": campaign.pk, "email": "Anna@ACME-Q.com"},
             {"campaign": campaign.pk, "email": "anna@acme-q.com"}]

    body = post(api, items)

    assert [c["index"] for c in body["created"]] == [1]
    reasons = {error["index"]: error["errors"] for error in body["errors"]}
    assert reasons[3] == reasons[4] == {"email": ["duplicate: anna@acme-q.com is already item 1 of this request"]}


def test_the_same_address_for_two_campaigns_is_no_duplicate(api):
    first, second = CampaignFactory(), CampaignFactory()
    items = ["skip me", {"campaign": first.pk, "email": "anna@acme-q.com"},
             {"campaign": second.pk, "email": "anna@acme-q.com"}]

    body = post(api, items)

    assert [c["index"] for c in body["created"]] == [1, 2]
    assert [error["index"] for error in body["errors"]] == [0]


def test_the_other_refusals_are_reported_at_the_request_index_too(api):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="known@acme-q.com")
    SuppressionFactory(email="blocked@acme-q.com")
    items = [42, {"campaign": campaign.pk, "email": "known@acme-q.com"}, [],
             {"campaign": campaign.pk, "email": "blocked@acme-q.com"}]

    body = post(api, items)

    errors = {error["index"]: error["errors"] for error in body["errors"]}
    assert errors[1] == {"email": ["duplicate: known@acme-q.com is already a lead in this campaign"]}
    assert errors[3] == {"email": ["blocked@acme-q.com is on the suppression list"]}
    assert not Lead.objects.filter(email="blocked@acme-q.com").exists()
