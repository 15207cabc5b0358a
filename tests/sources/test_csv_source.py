"""The CSV lead source: a file on disk read into numbered records through the column mapping."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cam.models import HarvestRejection
from cam.pipeline.harvest import harvest_source
from cam.sources import SourceError, SourceRecord, get_backend
from tests.factories import CampaignFactory, LeadSourceFactory


def write(tmp_path, content: bytes, name: str = "leads.csv") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_it_reads_a_file_on_disk_with_line_numbers(tmp_path):
    path = write(tmp_path, b"email,first_name,company\nanna@acme-gmbh.de,Anna,ACME\n\nben@acme-gmbh.de,Ben,ACME\n")
    backend = get_backend("csv", {"path": path})

    records = list(backend.records())

    assert records == [
        SourceRecord(line=2, data={"email": "anna@acme-gmbh.de", "first_name": "Anna", "company": "ACME"}),
        SourceRecord(line=4, data={"email": "ben@acme-gmbh.de", "first_name": "Ben", "company": "ACME"}),
    ]
    assert backend.map_record(records[0].data) == {"email": "anna@acme-gmbh.de", "first_name": "Anna",
                                                   "company": "ACME"}


def test_it_fails_on_a_missing_file_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.csv")

    with pytest.raises(SourceError) as caught:
        list(get_backend("csv", {"path": path}).records())

    assert str(caught.value) == f"Cannot open {path}: No such file or directory."


def test_it_asks_for_a_path_when_none_is_configured():
    with pytest.raises(ValidationError) as caught:
        list(get_backend("csv", {}).records())

    assert caught.value.message_dict == {"path": ["Name the CSV file to read."]}


def test_it_fails_on_a_file_without_an_email_column_listing_the_columns(tmp_path):
    path = write(tmp_path, b"Name,Mail Address,Firma\nAnna,anna@acme-gmbh.de,ACME\n")

    with pytest.raises(SourceError) as caught:
        list(get_backend("csv", {"path": path}).records())

    assert str(caught.value) == "The file has no 'email' column; its columns are: name, mail_address, firma."


def test_it_fails_on_an_empty_file(tmp_path):
    with pytest.raises(SourceError, match=r"^The file is empty: the first line should name the columns\.$"):
        list(get_backend("csv", {"path": write(tmp_path, b"")}).records())


def test_it_reads_differently_named_columns_through_the_mapping(tmp_path):
    path = write(tmp_path, b"E-Mail,Vorname,Firma,email\nanna@acme-gmbh.de,Anna,ACME,private@gmail.com\n")
    backend = get_backend("csv", {"path": path, "columns": {"email": "E-Mail", "first_name": "Vorname",
                                                            "company": " firma "}})

    (record,) = backend.records()

    assert backend.map_record(record.data) == {"email": "anna@acme-gmbh.de", "first_name": "Anna",
                                               "company": "ACME"}


def test_it_names_the_mapped_column_when_the_file_lacks_it(tmp_path):
    path = write(tmp_path, b"email\nanna@acme-gmbh.de\n")

    with pytest.raises(SourceError, match=r"^The file has no 'e_mail' column; its columns are: email\.$"):
        list(get_backend("csv", {"path": path, "columns": {"email": "E-Mail"}}).records())


def test_it_reads_a_latin_1_file(tmp_path):
    path = write(tmp_path, "email,last_name,company\nanna@acme-gmbh.de,Müller,Bäckerei Groß\n".encode("latin-1"))
    backend = get_backend("csv", {"path": path})

    (record,) = backend.records()

    assert (record.data["last_name"], record.data["company"], record.error) == ("Müller", "Bäckerei Groß", "")
    assert backend.encoding == "cp1252"


def test_it_reads_a_utf8_file_with_a_byte_order_mark(tmp_path):
    path = write(tmp_path, "\ufeffEmail,Last Name\nanna@acme-gmbh.de,Żółć\n".encode())
    backend = get_backend("csv", {"path": path})

    (record,) = backend.records()

    assert record.data == {"email": "anna@acme-gmbh.de", "last_name": "Żółć"}
    assert backend.encoding == "utf-8"


def test_it_passes_on_a_broken_row_with_its_error(tmp_path):
    path = write(tmp_path, b"email,company\nanna@acme-gmbh.de,Smith, Jones and Co\nben@acme-gmbh.de,ACME\n")

    records = list(get_backend("csv", {"path": path}).records())

    assert [(record.line, record.error) for record in records] == [
        (2, "has 3 values but the header has 2 columns (an unquoted comma?)"), (3, "")]


def test_it_refuses_a_mapping_to_an_unknown_lead_field():
    with pytest.raises(ValidationError) as caught:
        get_backend("csv", {"path": "leads.csv", "columns": {"mail": "E-Mail"}})

    assert caught.value.message_dict["columns"][0].startswith("Unknown lead field(s): mail. Known: email, ")


def test_it_refuses_an_unknown_kind_of_source():
    with pytest.raises(SourceError, match=r"^Unknown source kind 'ftp'; known kinds: csv, http_json\.$"):
        get_backend("ftp", {})


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/proc/self/environ", "/etc/passwd", ".env", "../../etc/hosts"])
def test_a_source_reads_nothing_outside_the_import_folders(path):
    source = LeadSourceFactory(name="Sneaky", config={"path": path})

    with pytest.raises(SourceError, match="outside the import folders"):
        harvest_source(source=source)

    assert not HarvestRejection.objects.exists()
    source.refresh_from_db()
    assert "AICMO_CAM_IMPORT_DIRS" in source.last_error


@pytest.mark.django_db
def test_a_link_out_of_the_import_folder_is_followed_before_the_check(tmp_path):
    link = tmp_path / "leads.csv"
    link.symlink_to("/etc/passwd")
    source = LeadSourceFactory(config={"path": str(link)})

    with pytest.raises(SourceError, match="outside the import folders"):
        harvest_source(source=source)


@pytest.mark.django_db
def test_saving_a_source_outside_the_import_folders_is_refused():
    source = LeadSourceFactory.build(campaign=CampaignFactory(), config={"path": "/etc/passwd"})

    with pytest.raises(ValidationError) as caught:
        source.full_clean()

    assert "outside the import folders" in " ".join(caught.value.message_dict["config"])
