"""Cleaning a batch of a file's rows a column at a time: the intake's fast path for CSV records.

``records.clean_record`` cleans one record's mapped fields: a dictionary of them made first, a dozen
calls, each value looked at alone. The rows of a file share their columns, and most of their values are
plain — printable text with single spaces, head counts and websites and time zones spelled the same way
row after row. ``RowCleaner`` takes a batch's rows by column instead: a column of text that is plain as
a whole is kept as it is (one look at the column joined), a head count, website or time zone is cleaned
once per distinct value, and every row is checked for what cannot be stored in one search over the
batch. Each row gets the ``CleanRecord`` that ``clean_record`` gives it, or ``None`` when it needs more
than these plain cases (a bad value, an address refused, a reading error): the intake then judges that
row the usual way, so every rejection and its reason still come from ``clean_record``.
tests/pipeline/test_row_cleaning.py holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat
from typing import Any

from cam.addresses import NormalizedAddress, RejectedAddress, normalize_address, normalize_plain_addresses
from cam.pipeline.records import (
    MAX_LENGTH,
    TEXT_FIELDS,
    UNSTORABLE,
    CleanRecord,
    RejectedRecord,
    clean_text,
    clean_timezone,
    clean_website,
    parse_company_size,
)
from cam.sources.base import SourceRecord
from cam.sources.row_values import Columns, RowValues

# A value the fast path leaves to ``clean_record`` (the row is then judged the usual way).
_SLOW: Any = object()
_MISSING: Any = object()
# Distinct values remembered per field: a list's head counts and time zones are a few dozen, its websites
# one per company; the memory is emptied when full, so it stays a few megabytes.
_VALUES_KEPT = 16384


class RowCleaner:
    """Cleans the rows of one file (one ``Columns``), whose lead fields are read from ``positions``
    (each lead field with the position of its column, as the source maps them)."""

    def __init__(self, columns: Columns, positions: Sequence[tuple[str, int]]) -> None:
        self.columns = columns
        where = dict(positions)
        self._email = where.get("email")
        self._texts = [(name, where[name], MAX_LENGTH[name]) for name in TEXT_FIELDS if name in where]
        self._size = where.get("company_size")
        self._website = where.get("website")
        self._timezone = where.get("timezone")
        # A name is checked with the values by ``records.unstorable_reason``: once here, for every row.
        self._names_storable = not UNSTORABLE.search("\x01".join(columns.names))
        self._sizes: dict[str, Any] = {}
        self._websites: dict[str, Any] = {}
        self._zones: dict[str, Any] = {}

    def clean(self, records: Sequence[SourceRecord]) -> list[CleanRecord | None]:
        """Each record's ``CleanRecord``, by position, or ``None`` for a record to be judged one by one."""
        results: list[CleanRecord | None] = [None] * len(records)
        if self._email is None or not self._names_storable:
            return results
        columns = self.columns
        where = [index for index, record in enumerate(records)
                 if not record.error and isinstance(record.data, RowValues) and record.data.columns is columns]
        rows: list[Sequence[str]] = [records[index].data.cells for index in where]  # type: ignore[attr-defined]
        if not rows or _unstorable("\x01".join(chain.from_iterable(rows))):
            return results  # a NUL or a lone surrogate somewhere: rare, and each record says where
        email = self._email
        plain = normalize_plain_addresses([cells[email] for cells in rows])
        addresses = [address or _address(cells[email]) for address, cells in zip(plain, rows, strict=True)]
        names = [name for name, _, _ in self._texts]
        texts = [_text_column([cells[position] for cells in rows], limit) for _, position, limit in self._texts]
        values: Any = zip(*texts, strict=True) if texts else repeat((), len(rows))
        sizes, zones = (
            repeat(_MISSING, len(rows)) if position is None
            else _cached([cells[position] for cells in rows], seen, clean)
            for position, seen, clean in ((self._size, self._sizes, parse_company_size),
                                          (self._timezone, self._zones, clean_timezone)))
        websites: Any = (repeat(_MISSING, len(rows)) if self._website is None
                         else self._websites_of([cells[self._website] for cells in rows], plain))
        for index, address, text, size, website, zone in zip(where, addresses, values, sizes, websites, zones,
                                                              strict=True):
            if address is None or size is _SLOW or website is _SLOW or zone is _SLOW:
                continue
            # In ``clean_record``'s order: the text fields, the head count, the website, the time zone.
            fields: dict[str, Any] = dict(zip(names, text, strict=True))
            if size is not _MISSING:
                fields["company_size"] = size
            if website is not _MISSING and website:
                fields["website"] = website
            if zone is not _MISSING and zone:
                fields["timezone"] = zone
            results[index] = CleanRecord(address=address, fields=fields)
        return results


    def _websites_of(self, raws: list[str], plain: list[NormalizedAddress | None]) -> list[Any]:
        """``clean_website`` of each value; ``_SLOW`` where it refuses one. A website that is its row's plain
        address's domain as it is (the usual case) is that domain's https address, which ``clean_website``
        takes by its fast path for plain domains (``records._plain_url``) without a question."""
        limit = MAX_LENGTH["website"]
        others = iter(_cached([raw for raw, address in zip(raws, plain, strict=True)
                               if address is None or raw != address.domain], self._websites, clean_website))
        return [f"https://{raw}"[:limit] if address is not None and raw == address.domain else next(others)
                for raw, address in zip(raws, plain, strict=True)]


def _unstorable(text: str) -> bool:
    """Whether ``text`` holds what ``records.unstorable_reason`` refuses: NUL, or (only outside ASCII) a lone
    surrogate."""
    return "\x00" in text or (not text.isascii() and UNSTORABLE.search(text) is not None)


def _address(raw: str) -> NormalizedAddress | None:
    try:
        address = normalize_address(raw)
    except RejectedAddress:
        return None
    return address if len(address.email) <= MAX_LENGTH["email"] else None


def _text_column(values: list[str], limit: int) -> list[str]:
    """``clean_text`` of each value. A column whose values are all printable, single-spaced and unpadded is
    found so on the column joined (any space next to a separator, or a double one, sends it value by value)."""
    joined = "|".join(values)
    if (joined.isprintable() and "  " not in joined and " |" not in joined and "| " not in joined
            and joined[:1] != " " and joined[-1:] != " "):
        return values if max(map(len, values), default=0) <= limit else [value[:limit] for value in values]
    return [clean_text(value, limit) for value in values]


def _cached(values: list[str], seen: dict[str, Any], clean: Callable[[str], Any]) -> list[Any]:
    """``clean`` of each value, each distinct value cleaned once; ``_SLOW`` where it refuses the value."""
    cleaned = []
    for value in values:
        result = seen.get(value, _MISSING)
        if result is _MISSING:
            try:
                result = clean(value)
            except RejectedRecord:
                result = _SLOW
            if len(seen) >= _VALUES_KEPT:
                seen.clear()
            seen[value] = result
        cleaned.append(result)
    return cleaned
