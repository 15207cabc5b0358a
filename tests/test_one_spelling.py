"""One spelling of an address or domain (Unicode, lower case) at every door: a lead typed into the admin,
and the API's searches, which find a row whichever spelling it was typed in."""

import pytest

from cam.models import Lead
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/cam/lead/add/"


def add_lead(admin_client, campaign, email):
    return admin_client.post(ADD, {"campaign": campaign.pk, "email": email, "status": "NEW", "current_step": 0,
                                   "raw_data": "{}", "score_breakdown": "{}"})


def test_a_lead_typed_into_the_admin_is_stored_in_the_one_spelling(admin_client):
    campaign = CampaignFactory()

    response = add_lead(admin_client, campaign, "  Anna@XN--EXMPLE-CUA.COM ")

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Lead.objects.get().email == "anna@exämple.com"


def test_the_admin_refuses_a_lead_the_campaign_has_in_another_spelling(admin_client):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="anna@xn--exmple-cua.com")

    page = add_lead(admin_client, campaign, "anna@exämple.com")

    assert page.status_code == 200
    assert "Already a lead of this campaign as anna@xn--exmple-cua.com." in page.content.decode()
    assert Lead.objects.count() == 1


def test_the_api_finds_a_suppression_in_either_spelling(admin_client):
    SuppressionFactory(email="", domain="exämple.com")

    for typed in ("xn--exmple-cua.com", "EXÄMPLE.com"):
        body = admin_client.get("/api/cam/suppressions/", {"search": typed}).json()
        assert [row["domain"] for row in body["results"]] == ["exämple.com"], typed


def test_the_api_finds_a_lead_in_either_spelling(admin_client):
    LeadFactory(email="anna@exämple.com")
    LeadFactory(email="jonas@example.com")

    for typed in ("anna@xn--exmple-cua.com", "xn--exmple-cua.com", "exämple"):
        body = admin_client.get("/api/cam/leads/", {"search": typed}).json()
        assert [row["email"] for row in body["results"]] == ["anna@exämple.com"], typed
