"""Bad data never stops an import midway: each bad row is a rejection with its line, the rest lands.

Run on PostgreSQL too: it refuses NUL characters in text and in JSON, where SQLite stores them.
"""

from __future__ import annotations

import io
import math

import pytest
from django.core.management import CommandError, call_command

from cam.models import HarvestRejection, Lead, LeadSource
from cam.pipeline import intake
from cam.pipeline.harvest import harvest_source
from cam.pipeline.records import storable_data, unstorable_reason
from cam.sources import SourceError
from cam.sources.csv_rows import MAX_ROW_BYTES
from tests.factories import CampaignFactory, LeadSourceFactory
from tests.servers.http import Reply

pytestmark = pytest.mark.django_db


def import_leads(path, campaign) -> list[str]:
    out = io.StringIO()
    call_command("cam_import_leads", str(path), "--campaign", str(campaign.pk), stdout=out)
    return out.getvalue().splitlines()


def rejections(campaign) -> list[tuple[int, str]]:
    return list(HarvestRejection.objects.filter(campaign=campaign).order_by("line").values_list("line", "reason"))


def test_it_rejects_a_row_holding_a_nul_character_and_imports_every_other_row(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BATCH_SIZE", 10)  # the bad row lands in the middle of five batches
    campaign = CampaignFactory()
    path = tmp_path / "leads.csv"
    rows = [b"lead%d@acme-gmbh.de,Lead %d\n" % (n, n) for n in range(50)]
    rows[24] = b"nul@acme-gmbh.de,Bad\x00Name\n"  # line 26
    path.write_bytes(b"email,company\n" + b"".join(rows))

    lines = import_leads(path, campaign)

    assert lines[0].endswith(": 49 created, 0 updated, 0 duplicate, 0 suppressed, 1 rejected.")
    assert lines[1:] == ["Rejected lines:",
                         "  line 26: the value of company holds a NUL character, which cannot be stored"]
    assert Lead.objects.filter(campaign=campaign).count() == 49
    assert Lead.objects.filter(campaign=campaign, email="lead49@acme-gmbh.de").exists()
    rejection = HarvestRejection.objects.get(campaign=campaign)
    assert (rejection.email, rejection.raw_data) == ("nul@acme-gmbh.de",
                                                     {"email": "nul@acme-gmbh.de", "company": "Bad\ufffdName"})


def test_it_rejects_a_nul_character_in_the_address_itself(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "leads.csv"
    path.write_bytes(b"email\nanna@acme-gmbh.de\nb\x00en@acme-gmbh.de\ncem@acme-gmbh.de\n")

    import_leads(path, campaign)

    assert rejections(campaign) == [(3, "the value of email holds a NUL character, which cannot be stored")]
    assert HarvestRejection.objects.get(campaign=campaign).email == "b\ufffden@acme-gmbh.de"
    assert Lead.objects.filter(campaign=campaign).count() == 2


def test_it_reports_an_unclosed_quote_and_imports_the_rows_after_it(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "leads.csv"
    path.write_bytes(b'email,company\nanna@acme-gmbh.de,ACME\nben@acme-gmbh.de,"ACME\n'
                     b"cem@acme-gmbh.de,ACME\ndora@acme-gmbh.de,ACME\n")

    lines = import_leads(path, campaign)

    assert lines[1:] == ["Rejected lines:",
                         "  line 3: a quoted field opened here is never closed (the file ends on line 5)"]
    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True)) == [
        "anna@acme-gmbh.de", "cem@acme-gmbh.de", "dora@acme-gmbh.de"]


def test_it_rejects_a_40_mb_line_and_imports_the_rows_after_it(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "leads.csv"
    with path.open("wb") as out:
        out.write(b"email,company\nanna@acme-gmbh.de,ACME\nben@acme-gmbh.de,")
        block = b"A" * (1 << 20)
        for _ in range(40):
            out.write(block)
        out.write(b"\ncem@acme-gmbh.de,ACME\n")

    lines = import_leads(path, campaign)

    assert lines[1:] == ["Rejected lines:",
                         f"  line 3: the line is {40 * (1 << 20) + 18:,} bytes long; a row may hold at most "
                         f"{MAX_ROW_BYTES:,} bytes"]
    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True)) == [
        "anna@acme-gmbh.de", "cem@acme-gmbh.de"]


def test_it_refuses_a_file_whose_header_holds_nul_characters_without_a_traceback(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "unicode-text.csv"
    path.write_bytes("email\nanna@acme-gmbh.de\n".encode("utf-16-le"))

    with pytest.raises(CommandError, match="The header line holds NUL characters"):
        import_leads(path, campaign)

    assert not Lead.objects.filter(campaign=campaign).exists()


def test_it_rejects_json_records_the_database_cannot_store_and_keeps_the_others(http_server):
    campaign = CampaignFactory()
    http_server.reply("/contacts", Reply(200, (
        b'[{"email": "anna@acme-gmbh.de", "company": "ACME"},'
        b' {"email": "ben@acme-gmbh.de", "company": "AC\\u0000ME"},'
        b' {"email": "cem@acme-gmbh.de", "first_name": "\\ud800Cem"},'
        b' {"email": "dora@acme-gmbh.de", "extra": {"score": NaN}},'
        b' {"email": "eva@acme-gmbh.de", "tags\\u0000": ["x"]},'
        b' {"email": "fay@acme-gmbh.de", "company": "ACME"}]')))
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.HTTP_JSON,
                               config={"url": http_server.url("/contacts"), "retries": 0})

    result = harvest_source(source=source)

    assert (result["created"], result["rejected"]) == (2, 4)
    assert rejections(campaign) == [
        (2, "the value of company holds a NUL character, which cannot be stored"),
        (3, "the value of first_name holds a lone surrogate (U+D800, left by a wrong decoding), which cannot "
            "be stored"),
        (4, "the value of extra.score is NaN, which cannot be stored"),
        (5, "the name 'tags\\x00' holds a NUL character, which cannot be stored"),
    ]
    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True)) == [
        "anna@acme-gmbh.de", "fay@acme-gmbh.de"]


def test_it_rejects_a_json_record_nested_too_deeply_to_store():
    deep: dict = {"email": "anna@acme-gmbh.de"}
    inner = deep
    for _ in range(200):
        inner["more"] = {}
        inner = inner["more"]

    assert unstorable_reason(deep) == "the record is nested more than 100 levels deep"
    kept = storable_data(deep)
    depth = 0
    while isinstance(kept, dict) and "more" in kept:
        kept, depth = kept["more"], depth + 1
    assert (depth, kept) == (100, "…")


def test_it_gives_storable_copies_of_odd_values():
    assert storable_data({"a\x00": ["x\ud800", math.inf, 1, None, True, 2.5], 3: object}) == {
        "a\ufffd": ["x\ufffd", "inf", 1, None, True, 2.5], "3": "<class 'object'>"}


def test_a_source_that_fails_on_its_second_page_keeps_the_leads_of_the_first(http_server):
    campaign = CampaignFactory()
    first_page = {"data": [{"email": "anna@acme-gmbh.de"}, {"email": "ben@acme-gmbh.de"}]}
    http_server.reply("/contacts", Reply(200, first_page), Reply(404, {"error": "no such page"}))
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.HTTP_JSON, config={
        "url": http_server.url("/contacts"), "retries": 0, "records_path": "data",
        "pagination": {"type": "page", "param": "page", "start": 1}})

    with pytest.raises(SourceError, match="refused the request"):
        harvest_source(source=source)

    # What was read before the failure landed; the source says what went wrong, for staff to look at.
    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True)) == [
        "anna@acme-gmbh.de", "ben@acme-gmbh.de"]
    source.refresh_from_db()
    assert "HTTP 404" in source.last_error
