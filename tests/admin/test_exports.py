"""CSV downloads open in a spreadsheet as text: no cell runs as a formula, in any export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from cam.admin.exports import spreadsheet_safe
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

PAYLOADS = ['==HYPERLINK("http://evil.example","x")', "=1+1", "@cmd|' /C calc'!A0", "-1+1",
            "+1+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_lead_export_escapes_every_formula(admin_client, payload):
    campaign = CampaignFactory(name=payload)
    LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", first_name=payload, last_name=payload,
                company=payload, title=payload, industry=payload, website=payload)

    (row,) = rows(admin_client.get(reverse("admin:cam_lead_export"), {"campaign__id__exact": campaign.pk}))

    for column in ("first_name", "last_name", "company", "title", "industry", "website", "campaign"):
        assert row[column] == "'" + payload, column
    assert row["email"] == "anna@acme-gmbh.de"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_suppression_export_escapes_every_formula(admin_client, payload):
    SuppressionFactory(email="anna@acme-gmbh.de", source=payload, note=payload)

    (row,) = rows(admin_client.get(reverse("admin:cam_suppression_export")))

    assert (row["email"], row["source"], row["note"]) == ("anna@acme-gmbh.de", "'" + payload, "'" + payload)


def test_numbers_and_ordinary_text_are_left_alone():
    assert [spreadsheet_safe(v) for v in ("-5", "+3.5", "Anna", "", None, 42, "a=b")] == [
        "-5", "+3.5", "Anna", "", None, 42, "a=b"]


def test_the_suppression_list_offers_its_export(admin_client):
    page = admin_client.get(reverse("admin:cam_suppression_changelist"))

    assert reverse("admin:cam_suppression_export") in page.content.decode()
