"""Reading a CSV file as numbered rows, whatever encoding the spreadsheet saved it in.

The contract, for every caller (the admin import, the CSV lead source):

- Rows come out one at a time, so memory stays flat whatever the size of the file.
- ``CsvRow.line`` is the physical line of the file where the record starts; the header is line 1.
  A quoted field may hold line breaks, so one record can span several lines: it is numbered by its
  first. Blank lines count as lines but give no row.
- Encoding: UTF-8, with or without a byte-order mark. A file that is not UTF-8 at all — its first
  ``SNIFF_BYTES`` hold lines with non-ASCII bytes and not one of them is valid UTF-8 — is read as
  Windows-1252, what Excel writes on Western-European systems; ``CsvRows.encoding`` says which was
  used. In a UTF-8 file, a line that does not decode spoils only its own record: that row carries an
  ``error`` naming the line and the byte, the other rows are unaffected.
- Column names match loosely: surrounding spaces are dropped, letters lower-cased, and inner runs of
  spaces or hyphens become one underscore ("First Name" → ``first_name``). Columns without a name
  are ignored.
- A record that cannot be read (undecodable bytes, broken quoting, more values than the header has
  columns, more than ``max_row_bytes``) still comes out, with ``error`` saying why, so the caller can
  report it by its line. A bad record costs only itself: reading goes on with the next physical line.
- Size: a record may hold ``max_row_bytes`` (``MAX_ROW_BYTES``, 1 MiB) over all its lines, and a
  value at most what the csv module takes (``csv.field_size_limit()``, 131,072 characters). A longer
  line is skipped as it is read, never held: its length is all that is kept.
- A quote that is never closed, or closed so that the record breaks further down, makes the record
  bad on the line that opened it; the lines it swallowed are then read again as rows of their own, so
  one stray quote never costs the rows after it. Reading again stays in proportion to the file: a row
  that starts among those lines and runs on into the next one is inside the same broken quote, and is
  reported at once instead of being followed to the same end.
- Values are passed on as the file holds them, NUL characters included: what the database can store
  is judged when a row is cleaned (``cam.pipeline.records.unstorable_reason``), for every source alike.
- ``CsvFileError`` means the file as a whole cannot be read: empty, a column named twice, UTF-16, a
  header line over the size cap or with NUL characters in it.
"""

from __future__ import annotations

import csv
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from cam.sources.row_values import Columns, RowValues

UTF8 = "utf-8"
WINDOWS_1252 = "cp1252"
SNIFF_BYTES = 1 << 20
MAX_ROW_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 16
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class CsvFileError(ValueError):
    """The file as a whole cannot be read as CSV; the message says why, for staff."""


@dataclass(frozen=True)
class CsvRow:
    line: int
    # The row's values by column name: a ``RowValues`` over the header's ``Columns`` (a read-only mapping
    # equal to the dictionary of the same items), or an empty dictionary for a row that cannot be read.
    values: Mapping[str, str]
    error: str = ""


def normalise_column_name(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


class _Line(NamedTuple):
    """One physical line: its text with its line ending, or none when it was too long to keep."""

    number: int
    text: str
    size: int  # in bytes, line ending included
    error: str = ""  # why it does not decode
    too_long: bool = False


class _BrokenRecord(Exception):
    """Raised from inside the csv parser's input when the record it is reading cannot be a row."""

    def __init__(self, reason: str, *, put_back: _Line | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.put_back = put_back  # the line that broke it, to be read again as the start of a row


class _RecordFeed:
    """The lines handed to the csv parser, one record at a time, with lines given back to be read again.

    ``start`` begins a record; ``taken`` is then what the parser has read of it. The feed breaks off a
    record the parser would not: one over the size cap, and one whose quoted field runs on into lines
    that a broken record before it swallowed (up to ``_again_until``). Such a row is inside the same
    stray quote — its parser state at that line break is the broken record's — and would meet the same
    end; breaking it off at once keeps reading again in proportion to the file.
    """

    def __init__(self, lines: Iterator[_Line], max_row_bytes: int) -> None:
        self._lines = lines
        self._max = max_row_bytes
        self._again: deque[_Line] = deque()
        self._again_until = 0  # the last line swallowed by the broken record on line _broken_line
        self._broken_line = 0
        self.taken: list[_Line] = []
        self._size = 0

    def start(self) -> None:
        self.taken, self._size = [], 0

    def give_back(self, extra: _Line | None = None) -> None:
        """The current record is broken: its lines after the first, and ``extra``, are read again as rows
        of their own."""
        lines = self.taken[1:] + ([extra] if extra is not None else [])
        if lines:
            self._again.extendleft(reversed(lines))
            if lines[-1].number > self._again_until:
                self._again_until, self._broken_line = lines[-1].number, self.taken[0].number

    def __iter__(self) -> _RecordFeed:
        return self

    def next_plain(self) -> tuple[int, list[str]] | None:
        """The next line's number and cells, taken without the csv parser, when it is a plain record: one
        whole line that decodes, with no quote, no carriage return but its ending, and no value longer
        than the parser takes. ``None`` otherwise, the line then left to be read by the parser."""
        if self._again:
            line = self._again.popleft()
        elif (following := next(self._lines, None)) is not None:
            line = following
        else:
            return None
        text = line.text
        body = text[:-2] if text[-2:] == "\r\n" else text[:-1] if text[-1:] == "\n" else text
        if (body and not line.error and not line.too_long and '"' not in body and "\r" not in body
                and len(body) <= csv.field_size_limit()):
            return line.number, body.split(",")
        self._again.appendleft(line)
        return None

    def __next__(self) -> str:
        line = self._again.popleft() if self._again else next(self._lines)
        if self.taken:  # past a line break inside a quoted field
            if line.number <= self._again_until:
                raise _BrokenRecord(f"a quoted field opened here runs on into line {line.number}, like the one "
                                    f"of line {self._broken_line}", put_back=line)
            if line.too_long or self._size + line.size > self._max:
                raise _BrokenRecord(f"a quoted field opened here is still open on line {line.number}, past the "
                                    f"{self._max:,} bytes a row may hold", put_back=line)
        self.taken.append(line)
        if line.too_long:
            raise _BrokenRecord(f"the line is {line.size:,} bytes long; a row may hold at most {self._max:,} bytes")
        self._size += line.size
        return line.text


class CsvRows:
    """The rows of a CSV byte stream. Reads the header on construction; iterate once for the rows."""

    def __init__(self, stream: BinaryIO, *, sniff_bytes: int = SNIFF_BYTES,
                 max_row_bytes: int = MAX_ROW_BYTES) -> None:
        lines = _DecodedLines(stream, sniff_bytes, max_row_bytes)
        self.encoding: str = lines.encoding
        self._feed = _RecordFeed(iter(lines), max_row_bytes)
        # strict: broken quoting is reported on its record instead of being read as text.
        self._reader = csv.reader(self._feed, strict=True)
        self._names = self._read_header()
        self.header: list[str] = [name for name in self._names if name]
        # Every row's values are under these names, one mapping object shared by all.
        self.columns = Columns(self.header)

    def _read_header(self) -> list[str]:
        for _line, cells, error, _broken in self._records():
            if error:
                if self._feed.taken and self._feed.taken[0].too_long:
                    raise CsvFileError(f"The header line is {self._feed.taken[0].size:,} bytes long: the file's "
                                       f"lines do not end in line breaks, or it is not a CSV file.")
                raise CsvFileError(f"The header line cannot be read: {error}.")
            if any("\x00" in cell for cell in cells):
                raise CsvFileError("The header line holds NUL characters: the file is not text, or it is UTF-16 "
                                   "(Excel's “Unicode text”); save it as “CSV UTF-8” instead.")
            if any(cell.strip() for cell in cells):
                break
        else:
            raise CsvFileError("The file is empty: the first line should name the columns.")
        names = [normalise_column_name(cell) for cell in cells]
        named = [name for name in names if name]
        twice = sorted({name for name in named if named.count(name) > 1})
        if twice:
            raise CsvFileError(f"The header names {', '.join(twice)} more than once; each column must be named once.")
        return names

    def __iter__(self) -> Iterator[CsvRow]:
        width, columns = len(self._names), self.columns
        named = [position for position, name in enumerate(self._names) if name]
        every_column_named = len(named) == width
        for line, cells, error, broken in self._records():
            if broken:
                yield CsvRow(line, {}, error)
                continue
            if not error and not "".join(cells).strip():  # no value but white space
                continue
            if len(cells) == width and every_column_named:  # the usual row: its cells are its values
                yield CsvRow(line, RowValues(columns, cells), error)
                continue
            if not error and any(cell.strip() for cell in cells[width:]):
                error = f"has {len(cells)} values but the header has {width} columns (an unquoted comma?)"
            yield CsvRow(line, RowValues(columns, [cells[i] if i < len(cells) else "" for i in named]), error)

    def _records(self) -> Iterator[tuple[int, list[str], str, bool]]:
        """``(line, cells, error, broken)`` for each record. A broken record has no cells; the lines it
        swallowed after its first are handed back to be read again."""
        feed = self._feed
        while True:
            feed.start()
            # Most records are one plain line: split at its commas, as the parser would (no quotes, so no
            # escaping; one line, so no size but the line's), in a tenth of the time.
            plain = feed.next_plain()
            if plain is not None:
                yield plain[0], plain[1], "", False
                continue
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                reason = _describe_csv_error(error, feed.taken)
                feed.give_back()
            except _BrokenRecord as broken:
                reason = broken.reason
                feed.give_back(broken.put_back)
            else:
                yield feed.taken[0].number, cells, _decoding_errors(feed.taken), False
                continue
            yield feed.taken[0].number, [], reason, True


def _decoding_errors(lines: list[_Line]) -> str:
    if len(lines) == 1:  # the usual record, on one line
        return f"not valid UTF-8 ({lines[0].error})" if lines[0].error else ""
    first = lines[0].number
    return "; ".join(f"not valid UTF-8 ({line.error})" if line.number == first
                     else f"line {line.number} is not valid UTF-8 ({line.error})"
                     for line in lines if line.error)


def _describe_csv_error(error: csv.Error, taken: list[_Line]) -> str:
    start, end = taken[0].number, taken[-1].number
    message = str(error)
    if "unexpected end of data" in message:
        return f"a quoted field opened here is never closed (the file ends on line {end})"
    if "field larger than field limit" in message:
        return f"a value is longer than {csv.field_size_limit():,} characters"
    if end != start:
        return f"not valid CSV on line {end}, inside a quoted field opened here: {message}"
    return f"not valid CSV: {message}"


class _DecodedLines:
    """The physical lines of a byte stream as text, with one encoding decided for the whole file.

    A line that does not decode is passed on with replacement characters, so the CSV parser keeps its
    place, and with the reason; a line over ``max_line_bytes`` is passed on as its length alone.
    """

    def __init__(self, stream: BinaryIO, sniff_bytes: int, max_line_bytes: int) -> None:
        self._stream = stream
        self._max = max_line_bytes
        head = _read_up_to(stream, sniff_bytes)
        if head.startswith(_UTF16_BOMS):
            raise CsvFileError("The file is UTF-16 (Excel's “Unicode text”); save it as “CSV UTF-8” instead.")
        if head.startswith(_UTF8_BOM):
            head = head[len(_UTF8_BOM):]
            self.encoding = UTF8
        else:
            self.encoding = _sniff_encoding(head, complete=len(head) < sniff_bytes)
        self._head = head

    def __iter__(self) -> Iterator[_Line]:
        for number, (raw, size) in enumerate(_split_lines(self._head, self._stream, self._max), start=1):
            if raw is None:
                yield _Line(number, "", size, too_long=True)
            else:
                yield self._decode(number, raw)

    def _decode(self, number: int, raw: bytes) -> _Line:
        if self.encoding == WINDOWS_1252:
            try:
                return _Line(number, raw.decode(WINDOWS_1252), len(raw))
            except UnicodeDecodeError:
                # Five bytes are unassigned in Windows-1252; Latin-1 maps every byte.
                return _Line(number, raw.decode("latin-1"), len(raw))
        try:
            return _Line(number, raw.decode(UTF8), len(raw))
        except UnicodeDecodeError as error:
            return _Line(number, raw.decode(UTF8, errors="replace"), len(raw),
                         error=f"byte 0x{raw[error.start]:02X} at position {error.start + 1}")


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    parts, remaining = [], size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _split_lines(head: bytes, stream: BinaryIO, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """``(line, size)`` for each line ending in LF (CRLF included), the last one possibly without.

    A line longer than ``limit`` bytes comes as ``(None, size)``: its bytes are dropped as they are
    read, so memory stays within ``limit`` and one chunk whatever the line's length.
    """
    parts: list[bytes] = []  # the current line so far, while it is within the limit
    size = 0
    chunk = head
    while chunk:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end + 1]
            size += len(piece)
            yield (None if size > limit else b"".join((*parts, piece)) if parts else piece), size
            parts, size, start = [], 0, end + 1
        piece = chunk[start:]
        size += len(piece)
        if size <= limit:
            parts.append(piece)
        else:
            parts = []
        chunk = stream.read(_CHUNK_BYTES)
    if size:
        yield (None if size > limit else b"".join(parts)), size


def _sniff_encoding(head: bytes, *, complete: bool) -> str:
    if not complete:
        # The sample may end inside a multi-byte character: judge whole lines only.
        head = head[: head.rfind(b"\n") + 1] or head
    if head.isascii() or _is_utf8(head):
        return UTF8
    # Valid multi-byte UTF-8 sequences almost never occur by chance in Windows-1252 text, so one
    # non-ASCII line that decodes means a UTF-8 file with a few broken lines.
    if any(_is_utf8(line) for line in head.split(b"\n") if not line.isascii()):
        return UTF8
    return WINDOWS_1252


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode(UTF8)
    except UnicodeDecodeError:
        return False
    return True
