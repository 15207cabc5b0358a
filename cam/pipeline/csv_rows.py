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
  columns) still comes out, with ``error`` saying why, so the caller can report it by its line.
- ``CsvFileError`` means the file as a whole cannot be read: empty, a column named twice, UTF-16.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

UTF8 = "utf-8"
WINDOWS_1252 = "cp1252"
SNIFF_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 16
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class CsvFileError(ValueError):
    """The file as a whole cannot be read as CSV; the message says why, for staff."""


@dataclass(frozen=True)
class CsvRow:
    line: int
    values: dict[str, str]
    error: str = ""


def normalise_column_name(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


class CsvRows:
    """The rows of a CSV byte stream. Reads the header on construction; iterate once for the rows."""

    def __init__(self, stream: BinaryIO, *, sniff_bytes: int = SNIFF_BYTES) -> None:
        self._lines = _DecodedLines(stream, sniff_bytes)
        # strict: broken quoting is reported on its record instead of silently swallowing the lines
        # that follow it into one field.
        self._reader = csv.reader(self._lines, strict=True)
        self.encoding: str = self._lines.encoding
        self._names = self._read_header()
        self.header: list[str] = [name for name in self._names if name]

    def _read_header(self) -> list[str]:
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                raise CsvFileError("The file is empty: the first line should name the columns.") from None
            except csv.Error as error:
                raise CsvFileError(f"The header line cannot be read as CSV: {error}.") from None
            errors = self._lines.take_errors(self._reader.line_num, record_start=self._reader.line_num)
            if errors:
                raise CsvFileError(f"The header line cannot be read: {errors}.")
            if any(cell.strip() for cell in cells):
                break
        names = [normalise_column_name(cell) for cell in cells]
        named = [name for name in names if name]
        twice = sorted({name for name in named if named.count(name) > 1})
        if twice:
            raise CsvFileError(f"The header names {', '.join(twice)} more than once; each column must be named once.")
        return names

    def __iter__(self) -> Iterator[CsvRow]:
        width = len(self._names)
        while True:
            start = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                self._lines.take_errors(self._reader.line_num, record_start=start)
                yield CsvRow(start, {}, _describe_csv_error(error, start, self._reader.line_num))
                continue
            error = self._lines.take_errors(self._reader.line_num, record_start=start)
            if not error and not any(cell.strip() for cell in cells):
                continue
            if not error and any(cell.strip() for cell in cells[width:]):
                error = f"has {len(cells)} values but the header has {width} columns (an unquoted comma?)"
            values = {name: cells[i] if i < len(cells) else "" for i, name in enumerate(self._names) if name}
            yield CsvRow(start, values, error)


def _describe_csv_error(error: csv.Error, start: int, end: int) -> str:
    if "unexpected end of data" in str(error):
        return f"a quoted field opened here is never closed (the file ends on line {end})"
    return f"not valid CSV: {error}"


class _DecodedLines:
    """The physical lines of a byte stream as text, with one encoding decided for the whole file.

    Lines that do not decode are passed on with replacement characters, so the CSV parser keeps its
    place, and remembered by number until the row they belong to collects them.
    """

    def __init__(self, stream: BinaryIO, sniff_bytes: int) -> None:
        self._stream = stream
        head = _read_up_to(stream, sniff_bytes)
        if head.startswith(_UTF16_BOMS):
            raise CsvFileError("The file is UTF-16 (Excel's “Unicode text”); save it as “CSV UTF-8” instead.")
        if head.startswith(_UTF8_BOM):
            head = head[len(_UTF8_BOM):]
            self.encoding = UTF8
        else:
            self.encoding = _sniff_encoding(head, complete=len(head) < sniff_bytes)
        self._head = head
        self._errors: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(_split_lines(self._head, self._stream), start=1):
            yield self._decode(number, raw)

    def _decode(self, number: int, raw: bytes) -> str:
        if self.encoding == WINDOWS_1252:
            try:
                return raw.decode(WINDOWS_1252)
            except UnicodeDecodeError:
                # Five bytes are unassigned in Windows-1252; Latin-1 maps every byte.
                return raw.decode("latin-1")
        try:
            return raw.decode(UTF8)
        except UnicodeDecodeError as error:
            self._errors[number] = f"byte 0x{raw[error.start]:02X} at position {error.start + 1}"
            return raw.decode(UTF8, errors="replace")

    def take_errors(self, last_line: int, *, record_start: int) -> str:
        """Why the lines up to ``last_line`` could not be decoded ("" if they could), forgetting them."""
        found = []
        while self._errors and next(iter(self._errors)) <= last_line:
            number = next(iter(self._errors))
            where = self._errors.pop(number)
            found.append(f"not valid UTF-8 ({where})" if number == record_start
                         else f"line {number} is not valid UTF-8 ({where})")
        return "; ".join(found)


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    parts, remaining = [], size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _split_lines(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """Lines ending in LF (CRLF included), each with its line ending, the last one possibly without."""
    pending = head
    while True:
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
        chunk = stream.read(_CHUNK_BYTES)
        if not chunk:
            break
        pending += chunk
    if pending:
        yield pending


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
