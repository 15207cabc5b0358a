"""The reader's fast path for plain lines (``_RecordFeed.next_plain``) reads a file as the csv parser does."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cam.sources import csv_rows
from cam.sources.csv_rows import CsvRows

# Pieces of lines: plain values, and everything around which the parser behaves otherwise (quotes, line
# breaks, carriage returns, NUL, bytes that do not decode, a value over the parser's limit).
_PIECES = [b"a", b"Anna", b" ", b",", b",", b'"', b'""', b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\xc3\xa4",
           b"\\", b"\t", b"x" * 40]


def _rows(content: bytes, *, plain: bool, **kwargs) -> list[tuple[int, dict[str, str], str]]:
    rows = CsvRows(io.BytesIO(content), **kwargs)
    if not plain:
        rows._feed.next_plain = lambda: None  # type: ignore[method-assign]  # every line to the parser
    return [(row.line, dict(row.values), row.error) for row in rows]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join))
@example(b'a,"b\nc,d\ne,f\n')
@example(b"a\rb,c\n")
@example(b"a,b,c,d\n")
@example(b"x" * 60 + b",y\n")
def test_plain_lines_read_as_the_csv_parser_reads_them(body):
    content = b"email,note\n" + body
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(50)  # so that a long value is refused within a few pieces
        fast, parsed = _rows(content, plain=True, max_row_bytes=200), _rows(content, plain=False, max_row_bytes=200)
    finally:
        csv.field_size_limit(limit)

    assert fast == parsed


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_a_file_of_plain_lines_is_read_without_the_parser(monkeypatch, encoding):
    content = "email,name\na@x.de,Zoë\r\nb@x.de,Bob\n\nc@x.de,\n".encode(encoding)
    parser_calls = []
    reader = csv.reader
    monkeypatch.setattr(csv_rows.csv, "reader", lambda lines, **kw: reader(
        (parser_calls.append(line) or line for line in lines), **kw))

    rows = _rows(content, plain=True)

    assert rows == [(2, {"email": "a@x.de", "name": "Zoë"}, ""), (3, {"email": "b@x.de", "name": "Bob"}, ""),
                    (5, {"email": "c@x.de", "name": ""}, "")]
    assert parser_calls == ["\n"]  # only the blank line
