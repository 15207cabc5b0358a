"""Cleaning a file's rows by column (``cam.pipeline.row_cleaning``) gives what cleaning each record does."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cam.pipeline.records import clean_record, unstorable_reason
from cam.pipeline.row_cleaning import RowCleaner
from cam.sources.base import SourceRecord
from cam.sources.csv_file import CsvFileSource
from cam.sources.row_values import Columns, RowValues

# Column layouts a file may have, with the mapping its source is given.
LAYOUTS = [
    (("email", "first_name", "last_name", "company", "title", "industry", "country", "company_size", "website",
      "timezone", "notes"), {}),
    (("e_mail", "firma", "name", "size", "web"), {"email": "e_mail", "company": "firma", "last_name": "name",
                                                    "company_size": "size", "website": "web"}),
    (("email", "notes"), {}),
]
_ODD = ["", " ", "  ", "|", " |", "| ", "\t", "\u2003", "\u00a0", "é", "\x85", "K", "\u212a", "-", "."]
_EMAILS = st.one_of(
    st.sampled_from(["anna@acme-gmbh.de", "anna@acme-gmbh.de", "Bob+eu@Mail.Beta.example.com",
                     " Anna.Schmidt@ACME.de ", "info@gmail.com", "anna@exämple.com",
                     "anna@xn--exmple-cua.com", "anna@acme.test", "not an address", "", "ANNA@\u212aacme.de",
                     "a@" + "b" * 63 + ".com", "x" * 64 + "@example.com", "x" * 65 + "@example.com",
                     '"a b"@acme.de', "anna@[192.0.2.1]", "anna@ab--cd.com"]),
    st.text(st.sampled_from(["a", "B", "@", ".", "-", "+", "ä", " "]), max_size=12))
_TEXTS = st.one_of(st.sampled_from(["Anna", "Head of Sales", "x" * 300, "a b c", ""]),
                   st.lists(st.sampled_from(["a", "Z", *_ODD]), max_size=8).map("".join))
_SIZES = st.one_of(st.sampled_from(["", " ", "10", "51-200", "1,200", "500+", "11 - 50", "abc", "-5",
                                    "99999999999", "１２", "250.0"]), _TEXTS)
_WEBSITES = st.one_of(st.sampled_from(["", "acme-gmbh.de", "acme.de", "https://acme.de/about", "ACME.de",
                                       "not a web address", "exämple.com", "[::1]", "acme.test", "gmail.com",
                                       " acme.de", "ftp://acme.de"]), _TEXTS)
_ZONES = st.sampled_from(["", " ", "europe/berlin", "Europe/Berlin", " UTC ", "Mars/Base"])


def _value(name: str) -> st.SearchStrategy[str]:
    if name in ("email", "e_mail"):
        return _EMAILS
    if name in ("company_size", "size"):
        return _SIZES
    if name in ("website", "web"):
        return _WEBSITES
    if name == "timezone":
        return _ZONES
    return _TEXTS


@st.composite
def _files(draw):
    names, mapping = draw(st.sampled_from(LAYOUTS))
    rows = draw(st.lists(st.tuples(*(_value(name) for name in names)), max_size=12))
    errors = draw(st.lists(st.sampled_from(["", "", "", "not valid UTF-8 (byte 0xFF at position 3)"]),
                           min_size=len(rows), max_size=len(rows)))
    if rows and draw(st.integers(0, 9)) == 0:  # now and then, what cannot be stored, in one value
        row, column = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(names) - 1))
        cells = list(rows[row])
        cells[column] += draw(st.sampled_from(["\x00", "\ud800", "\udfff"]))
        rows[row] = tuple(cells)
    return names, mapping, rows, errors


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_files())
def test_rows_cleaned_by_column_are_cleaned_as_each_record_alone(file):
    names, mapping, rows, errors = file
    columns = Columns(names)
    source = CsvFileSource({"path": "leads.csv", "columns": mapping})
    records = [SourceRecord(line=line, data=RowValues(columns, list(cells)), error=error)
               for line, (cells, error) in enumerate(zip(rows, errors, strict=True), start=2)]

    cleaned = RowCleaner(columns, source.field_positions(columns)).clean(records)

    assert len(cleaned) == len(records)
    for record, result in zip(records, cleaned, strict=True):
        if result is None:
            continue  # judged alone by the intake, as before
        assert not record.error and not unstorable_reason(record.data)
        assert result == clean_record(source.map_record(record.data))


def test_the_rows_lists_are_made_of_are_all_cleaned_by_column():
    names, mapping = LAYOUTS[0]
    columns = Columns(names)
    source = CsvFileSource({"path": "leads.csv", "columns": mapping})
    records = [SourceRecord(line=2 + n, data=RowValues(columns, [
        f"person.{n}@company{n % 3}.example.com", f"Anna{n}", "Schmidt", "Acme GmbH", "CTO", "Software", "DE",
        ["10", "51-200", "1,200", ""][n % 4], f"company{n % 3}.example.com", ["", "Europe/Berlin"][n % 2], ""]))
        for n in range(20)]

    cleaned = RowCleaner(columns, source.field_positions(columns)).clean(records)

    assert cleaned == [clean_record(source.map_record(record.data)) for record in records]
