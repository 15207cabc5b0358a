"""Writing new leads by COPY (PostgreSQL) gives the leads Django's own insert gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.forms.models import model_to_dict

from cam.models import Lead
from cam.pipeline.lead_insert import leads_insert, staged_rows
from cam.sources.row_values import Columns, RowValues
from tests.factories import CampaignFactory, LeadFactory, LeadSourceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
ROWS = [
    {"email": "anna@acme-gmbh.de", "is_role_account": False, "is_free_mail": False, "first_name": "Anna",
     "company": "ACME GmbH", "company_size": 250, "website": "https://acme-gmbh.de", "timezone": "Europe/Berlin",
     "raw_data": {"email": "anna@acme-gmbh.de", "Notes": "Met at the fair\ttab, \\ backslash, \"quotes\"\nand a line",
                  "nested": {"list": [1, 2.5, None, True]}, "ünïcödé": "日本語"}},
    {"email": "info@gmail.com", "is_role_account": True, "is_free_mail": True, "raw_data": {}},
    {"email": "bob@beta.example.com", "is_role_account": False, "is_free_mail": False, "company_size": None,
     "title": "", "raw_data": {"email": "bob@beta.example.com", "empty": ""}},
]
# CSV rows, whose raw record is staged as its values and made JSON by the database.
CSV_COLUMNS = Columns(["email", "notes", "braces", "ünïcödé", "empty"])
CSV_ROWS = [
    {"email": "carla@csv.example.com", "is_role_account": False, "is_free_mail": False, "first_name": "Carla",
     "raw_data": RowValues(CSV_COLUMNS, ["carla@csv.example.com", 'a\ttab\\n, \\ "quoted" \\"\nline\r\n',
                                         '{"a","b"} NULL \\N', "日本語 ‐ ẞ", ""])},
    {"email": "dirk@csv.example.com", "is_role_account": False, "is_free_mail": False, "company": "Tab\tCo",
     "raw_data": RowValues(CSV_COLUMNS, ["dirk@csv.example.com", "", "{}", ",", "NULL"])},
    # Another file's columns in the same batch: encoded as JSON instead.
    {"email": "eve@csv.example.com", "is_role_account": False, "is_free_mail": False,
     "raw_data": RowValues(Columns(["email", "x"]), ["eve@csv.example.com", "\\"])},
]


def _stored(campaign) -> list[dict]:
    leads = Lead.objects.filter(campaign=campaign).order_by("email")
    return [{**model_to_dict(lead, exclude=["id", "campaign"]), "created_at": lead.created_at,
             "updated_at": lead.updated_at, "email_domain": lead.email_domain} for lead in leads]


def test_copy_gives_the_leads_django_gives():
    source = LeadSourceFactory()
    copied, built = CampaignFactory(), CampaignFactory()

    leads_insert(campaign=copied, source=source, now=NOW, rows=ROWS + CSV_ROWS)
    Lead.objects.bulk_create([Lead(campaign=built, source=source, harvested_at=NOW,
                                   **{**row, "raw_data": dict(row["raw_data"])}) for row in ROWS + CSV_ROWS])
    Lead.objects.filter(campaign=built).update(created_at=NOW, updated_at=NOW)
    if connection.vendor != "postgresql":  # Django's insert stamps the time it runs
        Lead.objects.filter(campaign=copied).update(created_at=NOW, updated_at=NOW)

    assert _stored(copied) == _stored(built)
    assert _stored(copied)[0]["raw_data"]["Notes"] == ROWS[0]["raw_data"]["Notes"]
    assert [lead["raw_data"] for lead in _stored(copied) if lead["email"].endswith("@csv.example.com")] == [
        dict(row["raw_data"]) for row in CSV_ROWS]


def test_an_address_already_a_lead_is_left_as_it_is_and_the_rest_land():
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", first_name="Annette")

    leads_insert(campaign=campaign, source=None, now=NOW, rows=ROWS)
    leads_insert(campaign=campaign, source=None, now=NOW, rows=ROWS[1:])  # the staging table starts empty again

    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", "first_name")) == [
        ("anna@acme-gmbh.de", "Annette"), ("bob@beta.example.com", ""), ("info@gmail.com", "")]


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b", "a\udc00b"])
def test_a_value_the_database_cannot_store_fails_the_copy_rather_than_another_value(text):
    # The intake refuses such records before (records.unstorable_reason); the COPY text marks its fields,
    # rows and NULLs with these characters while it is made, so it checks that only its own are there.
    row = {"email": "x@acme-gmbh.de", "is_role_account": False, "is_free_mail": False, "first_name": text,
           "raw_data": RowValues(CSV_COLUMNS, ["x@acme-gmbh.de", text, "", "", ""])}

    with pytest.raises(ValueError, match="cannot be stored"):
        staged_rows([row])
