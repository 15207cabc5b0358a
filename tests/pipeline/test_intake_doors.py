"""One CSV file through every door that takes leads in — the admin's import, the API (item by item and in
bulk), the harvest of a CSV source and ``manage.py cam_import_leads`` — ends the same way at each: the same
leads in the database, the same counts per outcome, the same rejected lines with the same reasons."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from cam.models import HarvestRejection, Lead, LeadSource
from cam.pipeline import intake
from cam.pipeline.harvest import harvest_source
from tests.admin.test_lead_import import confirm, preview, text_of
from tests.api.conftest import client_with_key
from tests.factories import CampaignFactory, LeadFactory, LeadSourceFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

# Small batches, so the repeat on line 14 is more than a batch after the line it repeats.
BATCH_SIZE = 4

FILE = (
    "email,first_name,last_name,company,title,company_size\n"   # 1
    "anna@acme-gmbh.de,Anna,Schmidt,ACME GmbH,CTO,120\n"          # 2 new
    "known@acme-gmbh.de,Karl,Known,ACME GmbH,Head of Sales,\n"    # 3 existing, a new title: updated
    "same@acme-gmbh.de,Sam,Same,ACME GmbH,CFO,\n"                 # 4 existing, nothing new: duplicate
    "gone@acme-gmbh.de,Gina,Gone,,,\n"                            # 5 a suppressed address
    "anyone@blocked-gmbh.de,Any,One,,,\n"                         # 6 a suppressed domain
    "not-an-email,Bad,Address,,,\n"                               # 7 a bad address
    "size@acme-gmbh.de,Size,Bad,,,20000000\n"                     # 8 a bad company size
    "nul@acme-gmbh.de,N\x00ul,Char,,,\n"                          # 9 a NUL character
    "ben@acme-gmbh.de,Ben,Berg,ACME GmbH,,15\n"                   # 10 new
    "cem@acme-gmbh.de,Cem,Cakir,ACME GmbH,,\n"                    # 11 new
    "dora@acme-gmbh.de,Dora,Diaz,,,\n"                            # 12 new
    "eva@acme-gmbh.de,Eva,Eck,,,\n"                               # 13 new
    "ANNA@Acme-GmbH.de,Anna,Schmidt,ACME GmbH,CTO,120\n"          # 14 line 2 again
)

EXPECTED_COUNTS = {"read": 13, "created": 5, "updated": 1, "duplicate": 2, "suppressed": 2, "rejected": 3}
NUL_REASON = "the value of first_name holds a NUL character, which cannot be stored"
SIZE_REASON = "company_size '20000000' is not between 0 and 10,000,000"
EXPECTED_LEADS = {
    # email, first name, last name, company, title, company size, status
    ("anna@acme-gmbh.de", "Anna", "Schmidt", "ACME GmbH", "CTO", 120, "NEW"),
    ("known@acme-gmbh.de", "Karl", "Known", "ACME GmbH", "Head of Sales", None, "IN_SEQUENCE"),
    ("same@acme-gmbh.de", "Sam", "Same", "ACME GmbH", "CFO", None, "QUALIFIED"),
    ("ben@acme-gmbh.de", "Ben", "Berg", "ACME GmbH", "", 15, "NEW"),
    ("cem@acme-gmbh.de", "Cem", "Cakir", "ACME GmbH", "", None, "NEW"),
    ("dora@acme-gmbh.de", "Dora", "Diaz", "", "", None, "NEW"),
    ("eva@acme-gmbh.de", "Eva", "Eck", "", "", None, "NEW"),
}


def rows_of_file() -> list[tuple[int, dict[str, str]]]:
    """The file's records with their lines (every record here is on one line)."""
    return list(enumerate(csv.DictReader(io.StringIO(FILE)), start=2))


def api_item(campaign, row: dict[str, str]) -> dict:
    """A row as an API client sends it: JSON types, so a company size is a number or left out."""
    item = {"campaign": campaign.pk, **{name: value for name, value in row.items() if name != "company_size"}}
    if row["company_size"]:
        item["company_size"] = int(row["company_size"])
    return item


def api_outcome(status: int, errors: dict | None, rejected: bool) -> str:
    if status == 201:
        return "created"
    if status == 200 and errors is None:
        return "updated"
    if rejected:
        return "rejected"
    return "suppressed" if "suppression list" in errors["email"][0] else "duplicate"


def stored_rejections(campaign, offset: int = 0) -> dict[int, str]:
    """The rejections stored for ``campaign`` by file line (an API item's index is two less)."""
    return {line + offset: reason
            for line, reason in HarvestRejection.objects.filter(campaign=campaign).values_list("line", "reason")}


# -- the doors: each takes the campaign, the tmp path and a client, and returns its counts, the reasons it gave
# by line, and the rejections it stored by line ------------------------------------------------------------

def through_the_admin(campaign, tmp_path, client):
    response = preview(client, campaign, FILE.encode(), name="trade-fair.csv")
    previewed = response.context["result"]
    assert (previewed.counts, Lead.objects.filter(campaign=campaign).count()) == (EXPECTED_COUNTS, 2), \
        "the preview says what will happen and writes nothing"
    text = text_of(confirm(client, response))
    assert ("Imported into “Spring”: 5 created, 1 updated, 2 unchanged (duplicate), 2 suppressed, 3 rejected."
            in text)
    assert "Line 14: duplicate: anna@acme-gmbh.de is already on line 2" in text
    assert LeadSource.objects.get(campaign=campaign, name="CSV import: trade-fair.csv").enabled is False
    return previewed.counts, {problem.line: problem.reason for problem in previewed.problems}, \
        stored_rejections(campaign)


def through_the_command(campaign, tmp_path, client):
    path = tmp_path / "trade-fair.csv"
    path.write_text(FILE, encoding="utf-8")
    out = io.StringIO()
    call_command("cam_import_leads", str(path), campaign=campaign.pk, stdout=out)
    counts = LeadSource.objects.get(campaign=campaign, name="CSV import: trade-fair.csv").last_harvest_counts
    assert re.search(r"13 rows read .*: 5 created, 1 updated, 2 duplicate, 2 suppressed, 3 rejected\.", out.getvalue())
    assert f"line 9: {NUL_REASON}" in out.getvalue()
    return counts, {}, stored_rejections(campaign)


def through_a_harvest(campaign, tmp_path, client):
    path = tmp_path / "trade-fair.csv"
    path.write_text(FILE, encoding="utf-8")
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.CSV, config={"path": str(path)})
    counts = harvest_source(source=source)
    source.refresh_from_db()
    assert source.last_harvest_counts == counts
    return counts, {}, stored_rejections(campaign)


def through_the_api_item_by_item(campaign, tmp_path, client):
    counts = dict.fromkeys(EXPECTED_COUNTS, 0)
    reasons, stored = {}, {}
    for line, row in rows_of_file():
        response = client.post(reverse("cam-api:lead-list"), api_item(campaign, row), format="json")
        errors = response.json() if response.status_code == 400 else None
        # A single create is item 0 of its request.
        rejection = HarvestRejection.objects.filter(campaign=campaign, line=0).exclude(reason__in=stored.values())
        rejection = rejection.values_list("reason", flat=True).first()
        if rejection:
            stored[line] = rejection
        outcome = api_outcome(response.status_code, errors, bool(rejection))
        counts["read"] += 1
        counts[outcome] += 1
        if errors:
            reasons[line] = next(iter(errors.values()))[0]
    # Each request is an input of its own: the repeat finds the lead the first request created.
    assert reasons[14] == "duplicate: anna@acme-gmbh.de is already a lead in this campaign"
    assert HarvestRejection.objects.filter(campaign=campaign).count() == len(stored)
    return counts, reasons, stored


def through_the_api_in_bulk(campaign, tmp_path, client):
    rows = rows_of_file()
    response = client.post(reverse("cam-api:lead-bulk"), {"leads": [api_item(campaign, row) for _, row in rows]},
                           format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    rejected = set(HarvestRejection.objects.filter(campaign=campaign).values_list("line", flat=True))
    counts = {"read": len(rows), "created": body["created_count"], "updated": body["updated_count"],
              "duplicate": 0, "suppressed": 0, "rejected": 0}
    reasons = {}
    for error in body["errors"]:
        outcome = api_outcome(400, error["errors"], error["index"] in rejected)
        counts[outcome] += 1
        reasons[error["index"] + 2] = next(iter(error["errors"].values()))[0]
    assert reasons[14] == "duplicate: anna@acme-gmbh.de is already item 0 of this request"
    return counts, reasons, stored_rejections(campaign, offset=2)


DOORS = [through_the_admin, through_the_command, through_a_harvest, through_the_api_item_by_item,
         through_the_api_in_bulk]


@pytest.mark.parametrize("door", DOORS, ids=lambda door: door.__name__)
def test_every_door_takes_the_same_file_in_the_same_way(door, admin_client, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BATCH_SIZE", BATCH_SIZE)
    campaign = CampaignFactory(name="Spring")
    LeadFactory(campaign=campaign, email="known@acme-gmbh.de", first_name="Karl", last_name="Known",
                company="ACME GmbH", title="Developer", company_size=None, status=Lead.Status.IN_SEQUENCE)
    LeadFactory(campaign=campaign, email="same@acme-gmbh.de", first_name="Sam", last_name="Same",
                company="ACME GmbH", title="CFO", company_size=None, status=Lead.Status.QUALIFIED)
    SuppressionFactory(email="gone@acme-gmbh.de")
    SuppressionFactory(email="", domain="blocked-gmbh.de")
    client = admin_client if door is through_the_admin else client_with_key()

    counts, reasons, rejections = door(campaign, tmp_path, client)

    assert counts == EXPECTED_COUNTS
    leads = set(Lead.objects.filter(campaign=campaign).values_list(
        "email", "first_name", "last_name", "company", "title", "company_size", "status"))
    assert leads == EXPECTED_LEADS
    assert sorted(rejections) == [7, 8, 9]
    assert rejections[7].startswith("invalid email 'not-an-email': ")
    assert (rejections[8], rejections[9]) == (SIZE_REASON, NUL_REASON)
    # Where a door names the lines it did not take in, it names the same reasons.
    if reasons:
        assert {line: reason for line, reason in reasons.items() if line != 14} == {
            4: "duplicate: same@acme-gmbh.de is already a lead in this campaign",
            5: "gone@acme-gmbh.de is on the suppression list",
            6: "the domain blocked-gmbh.de is on the suppression list",
            **rejections}
