"""Reading CSV bytes as numbered rows: line numbers, encodings, and records that cannot be read."""

from __future__ import annotations

import io

import pytest

from cam.sources.csv_rows import UTF8, WINDOWS_1252, CsvFileError, CsvRow, CsvRows


def read(content: bytes, **kwargs) -> CsvRows:
    return CsvRows(io.BytesIO(content), **kwargs)


def test_it_numbers_a_record_by_the_line_it_starts_on():
    rows = list(read(b'email,note\na@x.de,"one\ntwo\nthree"\nb@x.de,plain\n'))

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "note": "one\ntwo\nthree"}),
        CsvRow(5, {"email": "b@x.de", "note": "plain"}),
    ]


def test_it_counts_blank_lines_but_gives_them_no_row():
    rows = list(read(b"email\r\na@x.de\r\n\r\n , \r\nb@x.de\r\n"))

    assert [(row.line, row.values["email"]) for row in rows] == [(2, "a@x.de"), (5, "b@x.de")]


def test_it_matches_column_names_loosely_and_ignores_unnamed_columns():
    rows = read(b" E-Mail ,First Name,LAST_NAME,\na@x.de,Anna,Schmidt,extra\n")

    assert rows.header == ["e_mail", "first_name", "last_name"]
    assert list(rows) == [CsvRow(2, {"e_mail": "a@x.de", "first_name": "Anna", "last_name": "Schmidt"})]


def test_it_fills_missing_values_and_accepts_trailing_empty_ones():
    rows = list(read(b"email,company,title\na@x.de\nb@x.de,ACME,CTO,,\n"))

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "company": "", "title": ""}),
        CsvRow(3, {"email": "b@x.de", "company": "ACME", "title": "CTO"}),
    ]


def test_it_reports_a_record_with_more_values_than_columns():
    (row,) = read(b"email,company\na@x.de,Smith, Jones and Co\n")

    assert (row.line, row.error) == (2, "has 3 values but the header has 2 columns (an unquoted comma?)")


def test_it_drops_a_utf8_byte_order_mark():
    rows = read("\ufeffemail,name\na@x.de,Zoë\n".encode())

    assert rows.encoding == UTF8
    assert rows.header == ["email", "name"]
    assert list(rows) == [CsvRow(2, {"email": "a@x.de", "name": "Zoë"})]


def test_it_reads_a_file_that_is_not_utf8_as_windows_1252():
    rows = read("email,name\na@x.de,Müller\nb@x.de,“Straße” – 5 €\n".encode("cp1252"))

    assert rows.encoding == WINDOWS_1252
    assert [row.values["name"] for row in rows] == ["Müller", "“Straße” – 5 €"]


def test_it_reports_only_the_undecodable_lines_of_a_utf8_file():
    content = "email,name\na@x.de,José\nb@x.de,Br".encode() + b"\xfcno\nc@x.de,Zo\xc3\xab\n"

    rows = read(content)

    assert rows.encoding == UTF8
    assert [(row.line, row.values["name"], row.error) for row in rows] == [
        (2, "José", ""),
        (3, "Br\ufffdno", "not valid UTF-8 (byte 0xFC at position 10)"),
        (4, "Zoë", ""),
    ]


def test_it_names_the_bad_line_inside_a_record_that_spans_several():
    rows = list(read(b'email,note\na@x.de,"fine\nbroken \xff\nfine"\nb@x.de,Zo\xc3\xab\n'))

    assert [(row.line, row.error) for row in rows] == [
        (2, "line 3 is not valid UTF-8 (byte 0xFF at position 8)"),
        (5, ""),
    ]


def test_it_reads_a_file_whose_only_non_ascii_line_is_not_utf8_as_windows_1252():
    # Without one valid UTF-8 line there is no telling a broken UTF-8 file from a Windows-1252 one;
    # Windows-1252 loses nothing.
    rows = read(b"email,name\na@x.de,Anna\nb@x.de,M\xfcller\n")

    assert rows.encoding == WINDOWS_1252
    assert [row.values["name"] for row in rows] == ["Anna", "Müller"]


def test_it_reports_bad_bytes_after_an_ascii_start_on_their_own_line():
    # The encoding is decided on the start of the file; here that start is plain ASCII.
    content = b"email,name\n" + b"a@x.de,Plain\n" * 10 + b"b@x.de,M\xfcller\n"

    rows = list(read(content, sniff_bytes=64))

    assert [row.line for row in rows if row.error] == [12]


def test_it_reports_an_unclosed_quote_without_losing_the_lines_around_it():
    rows = list(read(b'email,name\na@x.de,Anna\nb@x.de,"Ben\nc@x.de,Carl\n'))

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "name": "Anna"}),
        CsvRow(3, {}, "a quoted field opened here is never closed (the file ends on line 4)"),
        CsvRow(4, {"email": "c@x.de", "name": "Carl"}),
    ]


def test_it_reports_broken_quoting_and_carries_on_with_the_next_line():
    rows = list(read(b'email,name\na@x.de,"Anna"s\nb@x.de,Ben\n'))

    assert (rows[0].line, rows[0].error) == (2, "not valid CSV: ',' expected after '\"'")
    assert rows[1] == CsvRow(3, {"email": "b@x.de", "name": "Ben"})


def test_it_reads_a_last_line_without_a_line_break():
    assert list(read(b"email\na@x.de")) == [CsvRow(2, {"email": "a@x.de"})]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "The file is empty"),
    (b"\n\n", "The file is empty"),
    (b"email,Email\na@x.de,b@x.de\n", "The header names email more than once"),
    ("email\na@x.de\n".encode("utf-16"), "The file is UTF-16"),
])
def test_it_refuses_a_file_it_cannot_read_as_a_whole(content, message):
    with pytest.raises(CsvFileError, match=message):
        read(content)


class CountingStream(io.BytesIO):
    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_it_streams_rows_without_reading_the_whole_file_first():
    content = b"email\n" + b"".join(b"lead%d@x.de\n" % n for n in range(200_000))
    stream = CountingStream(content)

    rows = iter(CsvRows(stream, sniff_bytes=1024))
    first = next(rows)

    assert first == CsvRow(2, {"email": "lead0@x.de"})
    assert stream.bytes_read < len(content) / 10
    assert sum(1 for _ in rows) == 199_999
