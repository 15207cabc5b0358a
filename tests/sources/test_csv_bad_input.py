"""Reading CSV that fights back: unclosed quotes, lines and values over the size cap, NUL characters.

Whatever a row holds, it costs only itself: it comes out with its line number and an ``error``, and
reading goes on with the next physical line.
"""

from __future__ import annotations

import io
import tracemalloc

import pytest

from cam.sources.csv_rows import MAX_ROW_BYTES, CsvFileError, CsvRow, CsvRows


def read(content: bytes, **kwargs) -> list[CsvRow]:
    return list(CsvRows(io.BytesIO(content), **kwargs))


def test_it_reads_the_rows_after_a_quote_that_is_never_closed():
    rows = read(b'email,name\na@x.de,Anna\nb@x.de,"Ben\nc@x.de,Carl\nd@x.de,Dora\n')

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "name": "Anna"}),
        CsvRow(3, {}, "a quoted field opened here is never closed (the file ends on line 5)"),
        CsvRow(4, {"email": "c@x.de", "name": "Carl"}),
        CsvRow(5, {"email": "d@x.de", "name": "Dora"}),
    ]


def test_it_reads_the_rows_after_a_stray_quote_that_a_later_quoted_value_seems_to_close():
    # The csv module pairs the stray quote of line 2 with the first quote of line 4, then trips over "Dora".
    rows = read(b'email,name\nb@x.de,"Ben\nc@x.de,Carl\nd@x.de,"Dora, Ltd"\ne@x.de,Eve\n')

    assert rows == [
        CsvRow(2, {}, "not valid CSV on line 4, inside a quoted field opened here: ',' expected after '\"'"),
        CsvRow(3, {"email": "c@x.de", "name": "Carl"}),
        CsvRow(4, {"email": "d@x.de", "name": "Dora, Ltd"}),
        CsvRow(5, {"email": "e@x.de", "name": "Eve"}),
    ]


def test_it_still_reads_a_quoted_value_over_several_lines_as_one_row():
    rows = read(b'email,note\na@x.de,"one\ntwo"\nb@x.de,plain\n')

    assert rows == [CsvRow(2, {"email": "a@x.de", "note": "one\ntwo"}), CsvRow(4, {"email": "b@x.de", "note": "plain"})]


def test_it_reports_each_of_many_unclosed_quotes_on_its_own_line():
    # Read afresh, each line opens a quote at its end; read inside a quoted field, it closes that one
    # and opens another, so the quote of line 2 runs to the end of the file. Each line is read again
    # only once after that, so the work stays in proportion to the file, not to its square.
    lines = 5000
    rows = read(b"email,name\n" + b"".join(b'p%d@x.de",y,"open\n' % n for n in range(lines)))

    assert [row.line for row in rows] == list(range(2, lines + 2))
    assert all(row.error and not row.values for row in rows)
    assert rows[0].error == f"a quoted field opened here is never closed (the file ends on line {lines + 1})"
    assert rows[1].error == "a quoted field opened here runs on into line 4, like the one of line 2"
    assert rows[-1].error == f"a quoted field opened here is never closed (the file ends on line {lines + 1})"


def test_it_rejects_a_line_over_the_cap_and_reads_the_next_one():
    rows = read(b"email,name\na@x.de,Anna\nb@x.de," + b"x" * 500 + b"\nc@x.de,Carl\n", max_row_bytes=100)

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "name": "Anna"}),
        CsvRow(3, {}, "the line is 508 bytes long; a row may hold at most 100 bytes"),
        CsvRow(4, {"email": "c@x.de", "name": "Carl"}),
    ]


def test_it_reads_the_rows_after_a_stray_quote_once_the_row_runs_over_the_cap():
    content = b'email,name\na@x.de,"Anna\n' + b"".join(b"p%02d@x.de,Name\n" % n for n in range(20))

    rows = read(content, max_row_bytes=100)

    assert rows[0] == CsvRow(2, {}, "a quoted field opened here is still open on line 9, past the 100 bytes "
                                    "a row may hold")
    assert rows[1:] == [CsvRow(n + 3, {"email": f"p{n:02d}@x.de", "name": "Name"}) for n in range(20)]


def test_it_rejects_a_value_longer_than_the_csv_parser_takes():
    rows = read(b"email,note\na@x.de," + b"y" * 200_000 + b"\nb@x.de,short\n")

    assert rows == [
        CsvRow(2, {}, "a value is longer than 131,072 characters"),
        CsvRow(3, {"email": "b@x.de", "note": "short"}),
    ]


def test_it_skips_a_40_mb_line_in_bounded_memory_and_reads_on(tmp_path):
    path = tmp_path / "long.csv"
    with path.open("wb") as out:
        out.write(b"email,name\na@x.de,Anna\nb@x.de,")
        block = b"z" * (1 << 20)
        for _ in range(40):
            out.write(block)
        out.write(b"\nc@x.de,Carl\n")

    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            rows = list(CsvRows(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert rows == [
        CsvRow(2, {"email": "a@x.de", "name": "Anna"}),
        CsvRow(3, {}, f"the line is {40 * (1 << 20) + 8:,} bytes long; a row may hold at most {MAX_ROW_BYTES:,} "
                      f"bytes"),
        CsvRow(4, {"email": "c@x.de", "name": "Carl"}),
    ]
    assert peak < 4 * MAX_ROW_BYTES, "the long line is never held in memory"


def test_it_refuses_a_file_whose_header_line_is_over_the_cap():
    with pytest.raises(CsvFileError, match="The header line is 1,000 bytes long"):
        read(b"email," + b"h" * 993 + b"\na@x.de,x\n", max_row_bytes=100)


def test_it_refuses_a_file_whose_header_holds_nul_characters():
    # UTF-16 saved without a byte-order mark: every other byte is a NUL.
    with pytest.raises(CsvFileError, match="The header line holds NUL characters"):
        read("email,name\na@x.de,Anna\n".encode("utf-16-le"))


def test_it_passes_nul_characters_in_a_row_on_for_the_caller_to_reject():
    # The reader gives what the file holds; what the database cannot store is judged when a row is
    # cleaned (cam.pipeline.records.unstorable_reason), the same way for every kind of source.
    rows = read(b"email,name\na@x.de,An\x00na\n")

    assert rows == [CsvRow(2, {"email": "a@x.de", "name": "An\x00na"})]
