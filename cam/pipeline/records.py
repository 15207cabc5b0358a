"""Cleaning one harvested record into lead fields, or a reason to reject it."""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dns.resolver
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from cam.addresses import NormalizedAddress, RejectedAddress, normalize_address, plain_domain
from cam.models import Lead
from cam.models.fields import max_length
from cam.sources.row_values import RowValues

TEXT_FIELDS = ("first_name", "last_name", "company", "title", "industry", "country")
MAX_LENGTH = {name: max_length(Lead, name)
               for name in (*TEXT_FIELDS, "email", "website", "timezone")}
# A whole number, optionally with thousands separators: 250, 1200, 1,200, 1.200, 1 200, 1'200.
_WHOLE = r"\d{1,3}(?:[.,' _]\d{3})+|\d+"
_SIZE = re.compile(rf"^({_WHOLE})\+?$")
_SIZE_RANGE = re.compile(rf"^({_WHOLE})\s*(?:-|–|to|bis)\s*({_WHOLE})$", re.IGNORECASE)
# Larger than any company, and than the column holds.
MAX_COMPANY_SIZE = 10_000_000
# Head counts read through the patterns, by their text (only those in range: a refused one is always
# refused again, with its reason); at most this many, which a list of ranges ("51-200") never reaches.
_SIZES_SEEN: dict[str, int] = {}
_SIZES_KEPT = 4096
_ZONES_BY_LOWER = {name.lower(): name for name in zoneinfo.available_timezones()}
_validate_url = URLValidator(schemes=["http", "https"])
# A web address whose host is a plain domain (``cam.addresses``' fast path) and whose path has no space: one
# the validator accepts, known without running its long expression. tests/pipeline/test_records.py holds
# the two to the same answers.
# Spelled out without IGNORECASE or ASCII: in Unicode case folding "ſ" is an "s" (and "K" a "k"), and the
# validator's "no space" is Unicode's.
_PLAIN_URL = re.compile(r"[hH][tT][tT][pP][sS]?://([A-Za-z0-9.-]+)(?:[/?#]\S*)?")
# PostgreSQL refuses NUL in text and in JSON; a lone surrogate (what decoding bytes with the wrong codec,
# or a JSON "\ud800" escape, leaves behind) is no UTF-8 at all, for any database.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper than any CRM nests a contact, and far from where encoding the raw data for the database
# would run out of recursion.
MAX_RECORD_DEPTH = 100


class RejectedRecord(ValueError):
    """The record cannot become a lead; the message says why, for staff. ``field`` names the lead field
    the reason is about (``email`` for the address), or is empty when it is about the record as a whole."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CleanRecord:
    address: NormalizedAddress
    fields: dict[str, Any]


_SEPARATORS = str.maketrans("", "", ".,' _")  # as in _WHOLE


def _whole_number(text: str) -> int:
    return int(text.translate(_SEPARATORS))


def parse_company_size(value: Any) -> int | None:
    """A head count: ``250``, ``"1,200"``, ``"500+"``, or a range such as ``"51-200"`` (its midpoint)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)  # JSON APIs often send 250.0
    elif isinstance(value, str) and value.isascii() and value.isdigit():  # the common case, without the patterns
        size = int(value)
    elif isinstance(value, str) and value in _SIZES_SEEN:  # a list spells its sizes in a few ways, over and over
        return _SIZES_SEEN[value]
    else:
        text = str(value).strip()
        single, span = _SIZE.match(text), _SIZE_RANGE.match(text)
        if single:
            size = _whole_number(single.group(1))
        elif span:
            size = (_whole_number(span.group(1)) + _whole_number(span.group(2))) // 2
        else:
            raise RejectedRecord(f"company_size {value!r} is not a whole number", field="company_size")
    if not 0 <= size <= MAX_COMPANY_SIZE:
        # Quoted as text whether it came as a number (JSON) or as text (a file): the same reason either way.
        raise RejectedRecord(f"company_size {str(value).strip()!r} is not between 0 and {MAX_COMPANY_SIZE:,}",
                             field="company_size")
    if isinstance(value, str) and len(_SIZES_SEEN) < _SIZES_KEPT:
        _SIZES_SEEN[value] = size
    return size


def unstorable_field(data: Mapping[str, Any]) -> str:
    """The top-level name under which ``data`` holds what cannot be stored, or ``""`` (see ``unstorable_reason``)."""
    return next((str(name) for name, value in data.items() if unstorable_reason({name: value})), "")


def unstorable_reason(data: Mapping[str, Any]) -> str:
    """Why ``data`` cannot be stored as it is, or ``""``: a NUL character or a lone surrogate in a
    value or a name, a number JSON cannot hold (NaN, infinity), nesting deeper than ``MAX_RECORD_DEPTH``.
    The first problem found is named by its path (``organization.name``). Never recurses."""
    try:  # a flat record of text (a CSV row) is searched in one piece; a find is then located below
        flat = ("\x01".join([*data.columns.names, *data.cells]) if isinstance(data, RowValues)
                else "\x01".join([*data.keys(), *data.values()]))
    except TypeError:
        flat = None
    if flat is not None and not UNSTORABLE.search(flat):
        return ""
    pending: list[tuple[str, Any, int]] = [("", data, 0)]
    while pending:
        path, value, depth = pending.pop()
        if isinstance(value, str):
            found = UNSTORABLE.search(value)
            if found:
                return f"the value of {path or 'the record'} holds {_describe(found.group())}, which cannot be stored"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"the value of {path} is {_number_name(value)}, which cannot be stored"
        elif isinstance(value, Mapping | list | tuple):
            if depth >= MAX_RECORD_DEPTH:
                return f"the record is nested more than {MAX_RECORD_DEPTH} levels deep"
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            children = []
            for key, child in items:
                name = str(key)
                found = UNSTORABLE.search(name)
                if found:
                    return f"the name {name!r} holds {_describe(found.group())}, which cannot be stored"
                children.append((f"{path}.{name}" if path else name, child, depth + 1))
            pending.extend(reversed(children))  # depth first, in the record's order
    return ""


def _describe(char: str) -> str:
    if char == "\x00":
        return "a NUL character"
    return f"a lone surrogate (U+{ord(char):04X}, left by a wrong decoding)"


def _number_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinite"


def storable_text(value: str) -> str:
    """``value`` with what a database cannot store (NUL, lone surrogates) replaced by U+FFFD."""
    return UNSTORABLE.sub("\ufffd", value)


def storable_data(data: Any, *, _depth: int = 0) -> Any:
    """A copy of ``data`` that any database stores as JSON, for keeping a rejected record as it came:
    text through ``storable_text``, names as text, numbers JSON cannot hold and other values as their
    text, and what is nested deeper than ``MAX_RECORD_DEPTH`` as ``"…"``."""
    if isinstance(data, str):
        return storable_text(data)
    if isinstance(data, bool | int | None) or (isinstance(data, float) and math.isfinite(data)):
        return data
    if isinstance(data, Mapping | list | tuple):
        if _depth >= MAX_RECORD_DEPTH:
            return "…"
        if isinstance(data, Mapping):
            return {storable_text(str(key)): storable_data(value, _depth=_depth + 1) for key, value in data.items()}
        return [storable_data(value, _depth=_depth + 1) for value in data]
    return storable_text(str(data))


def _single_spaced(text: str) -> str:
    """``text`` with its runs of white space made one space, and none at either end."""
    # Printable text holds no white space but the plain space (``str.isprintable`` refuses every other kind
    # ``str.split`` splits on), so most values are already so and are kept without splitting them.
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def _plain_url(url: str) -> bool:
    match = _PLAIN_URL.fullmatch(url) if len(url) <= 2000 else None
    return match is not None and plain_domain(match[1].lower())


def clean_record(data: Mapping[str, Any], *, check_mx: bool = False,
                 dns_resolver: dns.resolver.Resolver | None = None) -> CleanRecord:
    """Lead fields from one mapped record. Raises ``RejectedRecord`` (or ``RejectedAddress``) with the reason."""
    try:
        address = normalize_address(data.get("email"), check_mx=check_mx, dns_resolver=dns_resolver)
    except RejectedAddress as exc:
        raise RejectedRecord(str(exc), field="email") from None
    if len(address.email) > MAX_LENGTH["email"]:
        raise RejectedRecord(f"the address is {len(address.email)} characters long once normalised; at most "
                             f"{MAX_LENGTH['email']} fit", field="email")
    fields: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = data.get(name)
        if value is not None:
            fields[name] = _single_spaced(value if value.__class__ is str else str(value))[: MAX_LENGTH[name]]
    if "company_size" in data:
        fields["company_size"] = parse_company_size(data["company_size"])
    website = clean_website(data.get("website"))
    if website:
        fields["website"] = website
    tz_name = clean_timezone(data.get("timezone"))
    if tz_name:
        fields["timezone"] = tz_name
    return CleanRecord(address=address, fields=fields)


def clean_text(value: str, limit: int) -> str:
    """A text field as a lead stores it: white space made single, cut to the column's ``limit``."""
    return _single_spaced(value)[:limit]


def clean_website(raw: Any) -> str:
    """A record's website as a lead stores it (with a scheme, cut to the column), ``""`` when it has none.
    Raises ``RejectedRecord``."""
    website = str(raw or "").strip()
    if not website:
        return ""
    if "://" not in website:
        website = f"https://{website}"
    if not _plain_url(website):
        try:
            _validate_url(website)
        except ValidationError:
            raise RejectedRecord(f"website {raw!r} is not a web address", field="website") from None
    return website[: MAX_LENGTH["website"]]


def clean_timezone(raw: Any) -> str:
    """A record's time zone by its proper name, ``""`` when it has none. Raises ``RejectedRecord``."""
    tz_name = str(raw or "").strip()
    if not tz_name:
        return ""
    known = _ZONES_BY_LOWER.get(tz_name.lower())
    if known is None:
        raise RejectedRecord(f"timezone {tz_name!r} is not a known time zone", field="timezone")
    return known
