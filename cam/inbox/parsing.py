"""Reading a raw message into the fields CAM stores for it, whatever shape the message is in.

``parse_message`` never raises: mail from the outside world is often malformed (headers that are
not what they claim, unknown charsets, bytes that are not text, a message cut at the size cap), and
a reply that cannot be read fully must still be stored with what could be read. Each field is read
on its own; a field that cannot be read is left empty and the reason is listed in ``problems``.

Every string returned is safe to store: no NUL characters (PostgreSQL refuses them) and no lone
surrogates (raw 8-bit bytes are read as UTF-8, with replacement characters where they are not).

``message_from_raw`` turns bytes into a message as the default policy reads it; ``message_from_raw_compat32``
(for storing) and ``message_from_raw_for_reading`` (for classifying and matching) read the same parts and
header text at a fraction of the cost, and tests hold them to it. All three are the standard library's
parser with two limits, because that parser and every walk over its result recurse once per level of
nesting, and a message built with thousands of levels would raise ``RecursionError`` (and take seconds:
each line is checked against every open boundary):

- a multipart or message/* part nested ``MAX_MIME_DEPTH`` levels down is not opened: it is kept as
  opaque data (``application/octet-stream``), so the text above it is still read;
- past ``MAX_MIME_PARTS`` parts, further parts are read over but not kept.

``unread_parts`` says what a message lost to these limits; ``parse_message`` lists it in ``problems``
and the classifier among its reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Policy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache, partial
from typing import Any, cast

from cam.inbox.text import body_text

# A msg-id as RFC 5322 writes it: <left@right>; broken mailers leave out the @ or the brackets.
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BARE_ID = re.compile(r"[^<>\s@]+@[^<>\s@]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLDING = re.compile(r"\s*[\r\n]+\s*")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_PLAIN = re.compile(r"[ -~]*")  # printable ASCII, one line
_DOT_ATOM = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
_SIMPLE_FROM = re.compile(rf"(?:(?P<name>[A-Za-z0-9]+(?: [A-Za-z0-9]+)*) )?<(?P<address>{_DOT_ATOM}@{_DOT_ATOM})>"
                          rf"|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM})")

# Mail clients nest a few levels (mixed > alternative > related), forwards a few more each; a reply
# nested deeper than this was built to break parsers. Both limits keep every walk over a message —
# ours, the standard library's, flufl.bounce's — far from the interpreter's recursion limit.
MAX_MIME_DEPTH = 50
MAX_MIME_PARTS = 1000
_OPAQUE = "application/octet-stream"


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""  # the ids, in order, separated by single spaces
    from_email: str = ""  # lower case; empty when the sender's address is not an address
    from_name: str = ""
    subject: str = ""
    date: datetime | None = None  # the Date header, in UTC
    text: str = ""  # the body as plain text (from the HTML part when there is no plain one)
    problems: tuple[str, ...] = field(default=())


class _Limits:
    """What one parse has read so far, shared by all the parts of the message."""

    def __init__(self) -> None:
        self.parts = 0
        self.left_out = 0
        self.too_deep = False


class _Bounded:
    """What a message read by ``message_from_raw`` or ``message_from_raw_compat32`` adds to its class: the
    parser attaches each part it creates to its parent before reading the part's headers, which is where
    the depth and the count are known."""

    _cam_limits: _Limits
    _cam_depth: int
    _cam_left_out: bool

    def _cam_start(self, limits: _Limits | None) -> None:
        self._cam_limits = limits or _Limits()
        self._cam_depth = 0
        self._cam_left_out = False

    def attach(self, payload: Message | str) -> None:
        limits = self._cam_limits
        if isinstance(payload, _Bounded) and payload._cam_limits is limits:  # a part being parsed
            payload._cam_depth = self._cam_depth + 1
            limits.parts += 1
            if limits.parts > MAX_MIME_PARTS:
                # Still read by the parser, as opaque data (cheap, no nesting), then dropped.
                payload._cam_left_out = True
                limits.left_out += 1
                return
        # typeshed narrows MIMEPart.attach to the part's own class, against its base (it ignores the override).
        super().attach(payload)  # type: ignore[misc]

    def _cam_bounded_type(self, content_type: str) -> str:
        if self._cam_depth >= MAX_MIME_DEPTH and content_type.partition("/")[0] in ("multipart", "message"):
            # The parser asks this before it opens a part: answering "opaque" is what stops it.
            self._cam_limits.too_deep = True
            return _OPAQUE
        return content_type


class _BoundedMessage(_Bounded, EmailMessage):
    """A message read by ``message_from_raw``."""

    def __init__(self, policy: Policy | None = None, *, limits: _Limits | None = None) -> None:
        super().__init__(policy)
        self._cam_start(limits)
        self._cam_type: tuple[tuple[str | None, str] | None, str] = (None, "")

    def get_content_type(self) -> str:
        if self._cam_left_out:
            return _OPAQUE
        # The parser asks a parent for its type once per part it reads, and the default policy parses
        # the header afresh each time: remembered for as long as the raw header stays the same.
        raw = next((value for name, value in self.raw_items() if name.lower() == "content-type"), None)
        key = (raw, self.get_default_type())
        if self._cam_type[0] != key:
            self._cam_type = (key, super().get_content_type())
        return self._cam_bounded_type(self._cam_type[1])


class _BoundedCompat32Message(_Bounded, Message):
    """A message read by ``message_from_raw_compat32``: headers kept as plain strings."""

    def __init__(self, policy: Policy = compat32, *, limits: _Limits | None = None) -> None:
        super().__init__(policy)
        self._cam_start(limits)

    def get_content_type(self) -> str:
        if self._cam_left_out:
            return _OPAQUE
        return self._cam_bounded_type(super().get_content_type())


class _ReadingMessage(_BoundedCompat32Message):
    """A message read by ``message_from_raw_for_reading``: a ``compat32`` message whose header values read as
    the default policy reads them (``message.get``, ``message[name]``, ``get_all``, ``items``, ``values``,
    and everything built on them: content types, parameters, charsets, transfer encodings), as strings.

    Every reader in the inbox uses those values as text only (never a header object's attributes), so the
    parts, payloads and header text are what ``message_from_raw``'s message gives, at a fraction of the cost:
    the header object is not built for a plain value (``_default_text``) and is remembered for the values
    every message repeats (``Content-Type: text/plain; charset=utf-8``).

    It keeps a memo of what the readers ask it (``cam.inbox.text.memoized``): it is not changed once read."""

    _headers: list[tuple[str, Any]]  # Message's own: (name, raw value), in order

    def __init__(self, policy: Policy = compat32, *, limits: _Limits | None = None) -> None:
        super().__init__(policy, limits=limits)
        self._cam_memo: dict[Any, Any] = {}
        self._cam_type: tuple[tuple[str | None, str] | None, str] = (None, "")

    def get_content_type(self) -> str:
        if self._cam_left_out:
            return _OPAQUE
        # Asked for each part the parser reads and by every walk over the parts: remembered for as long as
        # the raw header stays the same (as ``_BoundedMessage`` does).
        raw = next((value for name, value in self._headers if name.lower() == "content-type"), None)
        key = (raw, self.get_default_type())
        if self._cam_type[0] != key:
            self._cam_type = (key, Message.get_content_type(self))
        return self._cam_bounded_type(self._cam_type[1])

    def get(self, name: str, failobj: Any = None) -> Any:
        wanted = name.lower()
        for key, value in self._headers:
            if key.lower() == wanted:
                return _default_text(wanted, value)
        return failobj

    def get_all(self, name: str, failobj: Any = None) -> Any:
        wanted = name.lower()
        values = [_default_text(wanted, value) for key, value in self._headers if key.lower() == wanted]
        return values or failobj

    def values(self) -> list[Any]:
        return [_default_text(key.lower(), value) for key, value in self._headers]

    def items(self) -> list[tuple[str, Any]]:
        return [(key, _default_text(key.lower(), value)) for key, value in self._headers]


# The header names the default policy reads with a parser of their own (addresses, dates, MIME fields,
# message ids); every other name is read as unstructured text, which a plain value (``_PLAIN``, no encoded
# word) comes out of unchanged.
_STRUCTURED = frozenset(name for name in cast(HeaderRegistry, policy.default.header_factory).registry
                        if name != "subject")


def _default_text(name: str, value: Any) -> Any:
    """``str(message[name])`` of a message read with the default policy, for the raw ``value``."""
    if not isinstance(value, str):
        return value
    if name not in _STRUCTURED and "=?" not in value and _PLAIN.fullmatch(value):
        return value
    return _default_text_parsed(name, value)


@lru_cache(maxsize=4096)
def _default_text_parsed(name: str, value: str) -> str:
    return str(policy.default.header_fetch_parse(name, value))


def message_from_raw(raw: bytes) -> EmailMessage:
    """``raw`` parsed as ``email.message_from_bytes(raw, policy=policy.default)`` does, within
    ``MAX_MIME_DEPTH`` and ``MAX_MIME_PARTS`` (see the module's docstring); never raises
    ``RecursionError``, whatever the nesting.

    NUL bytes are dropped first: RFC 5322 allows none anywhere in a message, yet some mail servers
    leave one at the end of a bounce, and PostgreSQL cannot store one in text. Nothing that is mail
    is carried by them, so what is read (and stored from it) is the message without them."""
    factory = partial(_BoundedMessage, limits=_Limits())
    return BytesParser(factory, policy=policy.default).parsebytes(raw.replace(b"\x00", b""))


def unread_parts(message: Message) -> list[str]:
    """What ``message_from_raw`` left unread of ``message``, for staff; empty for any other message."""
    limits = getattr(message, "_cam_limits", None)
    if not isinstance(limits, _Limits):
        return []
    found = []
    if limits.too_deep:
        found.append(f"parts nested more than {MAX_MIME_DEPTH} levels deep were not read")
    if limits.left_out:
        found.append(f"only the first {MAX_MIME_PARTS} parts were read; {limits.left_out} more were left out")
    return found


def message_from_raw_compat32(raw: bytes) -> Message:
    """``raw`` read as ``message_from_raw`` reads it, into a ``compat32`` message: the same parts, the same
    raw headers and the same limits, without building the default policy's header objects on every
    header lookup (about a tenth of the time). For reading stored fields (``parse_message``), which
    asks the default policy only about the headers it needs (``_modern``)."""
    factory = partial(_BoundedCompat32Message, limits=_Limits())
    return BytesParser(factory, policy=compat32).parsebytes(raw.replace(b"\x00", b""))


def message_from_raw_for_reading(raw: bytes) -> Message:
    """``raw`` read as ``message_from_raw`` reads it, for the classifier and the matching: the same parts,
    payloads, limits and header text (``_ReadingMessage``; a test holds both readings to the same
    classification over the corpus), parsed with ``compat32`` at about a third of the cost."""
    factory = partial(_ReadingMessage, limits=_Limits())
    return BytesParser(factory, policy=compat32).parsebytes(raw.replace(b"\x00", b""))


def parse_message(raw: bytes) -> ParsedMessage:
    """The stored fields of ``raw`` (the message's bytes, possibly cut short); never raises."""
    try:
        message = message_from_raw_compat32(raw or b"")
    except Exception as exc:  # the parser is lenient; this is a last resort
        return ParsedMessage(problems=(f"not a message: {type(exc).__name__}: {exc}",))
    return parsed_fields(message)


def parsed_fields(message: Message, *, fast: bool = True) -> ParsedMessage:
    """The stored fields of a message read by ``message_from_raw_compat32`` (or ``message_from_raw``: the
    same fields, which a test holds to).

    ``fast``: plain From, Subject and Date values (printable ASCII on one line, no encoded words, a
    plain address) are read directly instead of through the default policy's header parser, which
    reads them the same (a test holds to that too) at several times the cost."""
    problems: list[str] = list(unread_parts(message))
    headers = _raw_headers(message)

    def read(name: str, reader: Callable[[], Any], default: Any) -> Any:
        try:
            return reader()
        except Exception as exc:  # one unreadable field must not cost the others
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return default

    from_email, from_name = read("From", lambda: _sender(headers, fast=fast), ("", ""))
    return ParsedMessage(
        message_id=read("Message-ID", lambda: _first_id(headers.get("message-id", "")), ""),
        in_reply_to=read("In-Reply-To", lambda: _first_id(headers.get("in-reply-to", "")), ""),
        references=read("References", lambda: " ".join(_ids(headers.get("references", ""))), ""),
        from_email=from_email,
        from_name=from_name,
        subject=read("Subject", lambda: _subject(headers, fast=fast), ""),
        date=read("Date", lambda: _date(headers, fast=fast), None),
        text=read("body", lambda: _body_text(message), ""),
        problems=tuple(problems),
    )


def clean_text(value: str) -> str:
    """``value`` made safe to store: raw 8-bit bytes read as UTF-8, control characters dropped."""
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte (an odd codec made it)
        value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    return _CONTROL.sub("", value)


def _one_line(value: str) -> str:
    return _FOLDING.sub(" ", clean_text(value)).strip()


def _raw_headers(message: Message) -> dict[str, str]:
    """Each header's first raw value (before any structured parsing), by lower-case name."""
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), value if isinstance(value, str) else str(value))
    return headers


def _ids(value: str) -> list[str]:
    value = _one_line(value)
    ids = [f"<{found}>" for found in _MSG_ID.findall(value)]
    if not ids:  # "abc@host" without brackets, written by a few mailers
        ids = [f"<{found}>" for found in _BARE_ID.findall(value)]
    return ids


def _first_id(value: str) -> str:
    ids = _ids(value)
    return ids[0] if ids else ""


def _decoded(value: str) -> str:
    """A raw header value with its encoded words (=?utf-8?q?…?=) decoded, as far as they decode."""
    try:
        return _one_line(str(make_header(decode_header(_one_line(value)))))
    except Exception:  # an unknown charset or a broken encoded word: keep the words as written
        return _one_line(value)


def _modern(headers: dict[str, str], name: str) -> Any:
    """The first ``name`` header as the default policy's header object: what ``message[name]`` of a message
    read with that policy is (the same function, on the same raw value)."""
    return policy.default.header_fetch_parse(name, headers[name])


def _sender(headers: dict[str, str], *, fast: bool = True) -> tuple[str, str]:
    raw = headers.get("from", "") or headers.get("sender", "")
    if not raw:
        return "", ""
    name = "from" if "from" in headers else "sender"
    if fast and (simple := _SIMPLE_FROM.fullmatch(headers[name])):
        # What the default policy's address parser reads from a plain "Name <address>" or "address".
        return (simple["address"] or simple["bare"]).lower(), simple["name"] or ""
    try:
        addresses = _modern(headers, name).addresses
        address = addresses[0]
        email_address, name = address.addr_spec, address.display_name
    except Exception:  # the structured parser gave up: fall back to the forgiving one
        name, email_address = getaddresses([_decoded(raw)])[0]
    email_address = _one_line(email_address).strip("<>").lower()
    if not _ADDRESS.match(email_address):  # e.g. an unclosed quote swallowed it: take what looks like one
        found = _BARE_ID.search(_decoded(raw).replace('"', " "))
        email_address = found.group(0).lower() if found else ""
    return email_address, _one_line(name).strip("\"' ")


def _subject(headers: dict[str, str], *, fast: bool = True) -> str:
    if "subject" not in headers:
        return ""
    if fast and _PLAIN.fullmatch(headers["subject"]) and "=?" not in headers["subject"]:
        return _one_line(headers["subject"])  # printable ASCII on one line, no encoded word: read as written
    try:
        return _one_line(str(_modern(headers, "subject")))
    except Exception:
        return _decoded(headers["subject"])


def _date(headers: dict[str, str], *, fast: bool = True) -> datetime | None:
    if "date" not in headers:
        return None
    value: datetime | None = None
    if fast and _PLAIN.fullmatch(headers["date"]):
        # What the default policy's Date header does with a value on one line, without building the header.
        with suppress(Exception):
            value = parsedate_to_datetime(headers["date"])
    if value is None:
        try:
            value = _modern(headers, "date").datetime
        except Exception:
            value = None
    if value is None:
        value = parsedate_to_datetime(_one_line(headers["date"]))  # raises on what it cannot read
    # "-0000" means "no time zone known": read it as UTC, as RFC 5322 asks. Converting here also
    # refuses a date that has no UTC equivalent (31 Dec 9999 west of Greenwich) before it is stored.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _body_text(message: Message) -> str:
    # The classifier reads the same body (``cam.inbox.text.body_text``): what staff see stored is what
    # was classified, made safe to store.
    return clean_text(body_text(message)).strip()
