"""The admin's CSV import with rows that would have stopped it: NUL characters, an unclosed quote, a huge line."""

from __future__ import annotations

import pytest

from cam.models import Lead
from cam.sources.csv_rows import MAX_ROW_BYTES
from tests.admin.test_lead_import import emails_in, import_file, preview, text_of
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_it_skips_the_lines_it_cannot_store_or_read_and_imports_the_others(admin_client):
    campaign = CampaignFactory(name="Trade fair")
    content = (
        b"email,first_name,company\n"                          # 1
        b"anna@acme-gmbh.de,Anna,ACME\n"                       # 2 good
        b"ben@acme-gmbh.de,B\x00en,ACME\n"                     # 3 NUL
        b"cem@acme-gmbh.de,Cem," + b"C" * (MAX_ROW_BYTES + 10) + b"\n"  # 4 over the cap
        b'dora@acme-gmbh.de,"Dora,ACME\n'                      # 5 a quote never closed
        b"eva@acme-gmbh.de,Eva,ACME\n"                         # 6 good
        b"fay@acme-gmbh.de,Fay,ACME\n"                         # 7 good
    )

    response = import_file(admin_client, campaign, content)

    text = text_of(response)
    assert "Imported into “Trade fair”: 3 created, 0 updated, 0 unchanged (duplicate), 0 suppressed, 3 rejected." \
        in text
    assert "Line 3: the value of first_name holds a NUL character, which cannot be stored" in text
    assert f"Line 4: the line is {MAX_ROW_BYTES + 32:,} bytes long; a row may hold at most {MAX_ROW_BYTES:,} bytes" \
        in text
    assert "Line 5: a quoted field opened here is never closed (the file ends on line 7)" in text
    assert emails_in(campaign) == {"anna@acme-gmbh.de", "eva@acme-gmbh.de", "fay@acme-gmbh.de"}
    assert Lead.objects.get(campaign=campaign, email="eva@acme-gmbh.de").raw_data == {
        "email": "eva@acme-gmbh.de", "first_name": "Eva", "company": "ACME"}


def test_it_refuses_a_file_whose_header_holds_nul_characters(admin_client):
    campaign = CampaignFactory()

    response = preview(admin_client, campaign, "email,first_name\nanna@acme-gmbh.de,Anna\n".encode("utf-16-le"))

    assert "The header line holds NUL characters" in text_of(response)
    assert response.context.get("confirm_form") is None
    assert not Lead.objects.exists()


def test_it_refuses_a_file_with_a_header_and_no_rows(admin_client):
    campaign = CampaignFactory()

    response = preview(admin_client, campaign, b"email,first_name\n")

    assert "No valid data to import" in text_of(response)
    assert response.context.get("confirm_form") is None


def test_the_upload_is_streamed_to_the_import_not_held_as_a_table_of_its_cells(admin_client):
    """A dataset of every cell took several times the file's size in memory (a 41 MB file: 260 MB)."""
    from cam.admin.lead_import import LeadCsvFormat

    content = b"email,first_name\n" + b"".join(b"lead%d@acme-gmbh.de,Lead\n" % n for n in range(2000))
    dataset = LeadCsvFormat().create_dataset(content)
    assert dataset and len(dataset) == 0  # rows to import, none held
    campaign = CampaignFactory(name="Fair")

    response = import_file(admin_client, campaign, content)

    assert "Imported into “Fair”: 2000 created, 0 updated" in text_of(response)
    assert len(emails_in(campaign)) == 2000
