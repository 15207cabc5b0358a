"""What an SMTP server receives for a message: its envelope addresses and its bytes, exactly as Django's
SMTP backend makes them, at a fraction of the cost.

Making them was most of what sending cost us per email beyond the SMTP conversation itself: Django
builds a tree of MIME objects (``message()``: a ``MIMEText`` per part, each header checked and stored
through the ``email`` package) and ``email.generator`` walks it back into bytes, folding every header
through ``email.header.Header`` — about 0.3 ms a message, more than the database's share of sending it.
``sanitize_address`` runs the RFC 5322 address parser on the recipient.

So the messages the sender builds (``EmailMessage`` or ``EmailMultiAlternatives``, UTF-8, text parts
only, no line over 998 bytes) are written here directly: the same headers in the same order, each
checked by Django's rule and folded by the same policy, the parts' bodies with their line ends made
CRLF, and a multipart's boundary chosen as ``email.generator`` chooses it. A printable ASCII header
value that fits on its line, and a plain ``local@domain`` address, are given back as they are,
because that is what folding and sanitising make of them; a longer printable ASCII value (the
``List-Unsubscribe`` header of every email) is folded by a copy of ``email.header``'s ASCII splitting;
anything else (non-ASCII, a display name, a quoted local part) goes through Django and the ``email``
package. A message
of any other shape (attachments, another charset, a line that needs quoted-printable, a subclass)
is made by Django as before. tests/outreach/test_smtp_wire.py checks that both ways give the same
bytes, the boundary apart, and refuse the same messages.
"""

from __future__ import annotations

import re
import smtplib
from email import generator
from email.message import Message
from email.policy import Compat32
from email.utils import formatdate, make_msgid
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.message import (  # type: ignore[attr-defined]  # DNS_NAME is left out of the stubs
    DNS_NAME,
    RFC5322_EMAIL_LINE_LENGTH_LIMIT,
    forbid_multi_line_headers,
    sanitize_address,
)

# Printable ASCII with no trailing white space: what ``Header.encode`` gives back as it is when it fits.
_PLAIN_VALUE = re.compile(r"[\x20-\x7e]*[\x21-\x7e]")
# A dot-atom local part and a domain of letters, digits and hyphens: what ``sanitize_address`` gives back
# as it is (no display name, nothing to quote, nothing to encode, no IDNA to apply).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]{1,63}"  # longer labels are refused by the IDNA codec, so by sanitize_address
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")


class _PlainHeadersFirst(Compat32):
    """The ``compat32`` policy Django's messages use, writing a plain header value without building a
    ``Header``: as it is when it fits on its line (``Header`` would give back the same line), else folded
    as ``Header`` folds ASCII (``_folded_ascii``)."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and self.max_line_length == _LINE and _PLAIN_VALUE.fullmatch(value):
            if len(name) + 2 + len(value) <= _LINE:
                return f"{name}: {value}{self.linesep}".encode("ascii")
            if _FOLDABLE.fullmatch(value):
                return f"{name}: {self.linesep.join(_folded_ascii(len(name) + 2, value))}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_LINE = 78  # compat32's line length, which Django's messages keep
_FOLDABLE = re.compile(r"[\x20-\x7e\t]+")  # one line of ASCII, which ``Header`` splits without encoding it
_FWS = re.compile(r"([ \t]+)")
_SPLIT_AFTER = ";, \t"  # ``Header.encode``'s splitchars, by preference


def _folded_ascii(header_length: int, value: str) -> list[str]:
    """The lines ``Header(value, header_name=…).encode(maxlinelen=78)`` folds ``value`` into, for one line of
    printable ASCII, spaces and tabs: ``email.header._ValueFormatter``'s ASCII splitting, step by step, on
    plain lists (the ``List-Unsubscribe`` header of every email is folded so, and ``Header`` took
    three times as long as all the other headers together)."""
    lines: list[str] = []
    parts: list[tuple[str, str]] = []  # the current line's (folding white space, text) pairs
    initial = header_length  # the header's name on the first line, until a line is started
    length = initial

    def new_line() -> None:
        nonlocal initial, length
        if length > 0:
            text = "".join(fws + part for fws, part in parts)
            if initial == 0 and (not parts or text.isspace()) and lines:
                lines[-1] += text
            else:
                lines.append(text)
        parts.clear()
        initial = length = 0

    pieces = _FWS.split(value)
    if pieces[0]:
        pieces[:0] = [""]
    else:
        pieces.pop(0)
    for fws, part in zip(pieces[::2], pieces[1::2], strict=True):
        parts.append((fws, part))
        length += len(fws) + len(part)
        if length <= _LINE:
            continue
        for splitter in _SPLIT_AFTER:
            at = next((i for i in range(len(parts) - 1, 0, -1)
                       if (splitter.isspace() and parts[i][0][:1] == splitter) or parts[i - 1][1][-1:] == splitter),
                      None)
            if at is not None:
                break
        else:  # nowhere to split: the text goes on a line of its own, after the header's name
            fws, part = parts.pop()
            if initial > 0:
                new_line()
                fws = fws or " "
            parts.append((fws, part))
            length = initial + sum(len(f) + len(p) for f, p in parts)
            continue
        lines.append("".join(f + p for f, p in parts[:at]))
        del parts[:at]
        initial = 0
        length = sum(len(f) + len(p) for f, p in parts)
    new_line()
    return lines


_SMTP_POLICY = _PlainHeadersFirst(linesep="\r\n")


def envelope_address(address: str, encoding: str) -> str:
    """``sanitize_address(address, encoding)``; raises ``ValueError`` for an address it refuses."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, encoding)


def smtp_path(address: str) -> str:
    """``smtplib.quoteaddr(address)``, the ``<…>`` of ``MAIL FROM`` and ``RCPT TO``, without parsing an
    address that is plain already (``envelope_address`` gives most of them so): smtplib parses each
    again for every message."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def message_bytes(message: EmailMessage) -> bytes:
    """``message.message().as_bytes(linesep="\\r\\n")``, as Django's SMTP backend sends it."""
    written = _written(message)
    return written if written is not None else mime_bytes(message.message())


def mime_bytes(mime: Message) -> bytes:
    """``mime.as_bytes(linesep="\\r\\n")`` for one of Django's MIME messages (``SafeMIMEText``, …)."""
    out = BytesIO()
    generator.BytesGenerator(out, mangle_from_=False, policy=_SMTP_POLICY).flatten(mime, unixfrom=False)
    return out.getvalue()


# The message classes whose ``message()`` the direct way writes; a subclass may build its own.
_WRITTEN_CLASSES = (EmailMessage, EmailMultiAlternatives)
_TEXT_SUBTYPES = ("plain", "html")
_NEWLINE = re.compile(rb"\r\n|\r|\n")  # the line ends email.generator makes CRLF
_SUBJECT_AS_IS = 69  # "Subject: " and the value fit on a 78-character line: ``Header`` gives it back as it is


def _written(message: EmailMessage) -> bytes | None:
    """The bytes of ``message`` written directly, or None when it is not of the shape written here, or
    when Django would refuse it (then ``message()`` raises its own error)."""
    if type(message) not in _WRITTEN_CLASSES or message.attachments or message.content_subtype not in _TEXT_SUBTYPES:
        return None
    encoding = message.encoding or settings.DEFAULT_CHARSET
    alternatives = getattr(message, "alternatives", ())
    if encoding != "utf-8" or any(not isinstance(content, str) or mimetype not in ("text/plain", "text/html")
                                  for content, mimetype in alternatives):
        return None
    try:
        parts = ([(message.content_subtype, message.body)] if message.body or not alternatives else []) + [
            (mimetype.partition("/")[2], content) for content, mimetype in alternatives]
        written_parts = [_text_part(subtype, body) for subtype, body in parts]
        if any(part is None for part in written_parts):
            return None
        fold = _SMTP_POLICY.fold_binary
        headers = b"".join(fold(name, value) for name, value in _headers(message))
    except Exception:  # what Django refuses (a line break in a header, text that is not UTF-8), it refuses itself
        return None
    if not alternatives:
        head, body = written_parts[0]  # type: ignore[misc]  # none is None
        return head + headers + b"\r\n" + body
    # As email.generator writes a multipart: the parts first, then a boundary found in none of them.
    texts = [head + b"\r\n" + body for head, body in written_parts]  # type: ignore[misc]
    boundary = generator.BytesGenerator._make_boundary(b"\r\n".join(texts))  # type: ignore[attr-defined]
    subtype = message.alternative_subtype  # type: ignore[attr-defined]  # alternatives: EmailMultiAlternatives
    delimiter = f"--{boundary}".encode("ascii")
    return (fold("Content-Type", f'multipart/{subtype}; boundary="{boundary}"') + b"MIME-Version: 1.0\r\n"
            + headers + b"\r\n" + delimiter + b"\r\n" + (b"\r\n" + delimiter + b"\r\n").join(texts)
            + b"\r\n" + delimiter + b"--\r\n")


def _text_part(subtype: str, text: str) -> tuple[bytes, bytes] | None:
    """A text part's own headers (as ``SafeMIMEText`` sets them) and its body with CRLF line ends; None
    for a body with a line too long for 8bit, which Django sends quoted-printable."""
    data = text.encode("utf-8")  # strict, as the email package encodes it
    if len(data) > RFC5322_EMAIL_LINE_LENGTH_LIMIT and any(
            len(line.encode(errors="surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT for line in text.splitlines()):
        return None
    head = (f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            f"Content-Transfer-Encoding: {'7bit' if data.isascii() else '8bit'}\r\n").encode("ascii")
    return head, b"\r\n".join(_NEWLINE.split(data))


def _headers(message: EmailMessage) -> list[tuple[str, Any]]:
    """The message's headers after its parts' own, in ``EmailMessage.message()``'s order, each value as
    ``forbid_multi_line_headers`` leaves it (raising what it raises)."""
    extra = message.extra_headers
    headers: list[tuple[str, Any]] = [("Subject", message.subject), ("From", extra.get("From", message.from_email))]
    for name, values in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to)):
        if name in extra:
            headers.append((name, extra[name]))
        elif values:
            headers.append((name, ", ".join(str(value) for value in values)))
    names = {name.lower() for name in extra}
    if "date" not in names:
        headers.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
    if "message-id" not in names:
        headers.append(("Message-ID", make_msgid(domain=DNS_NAME)))
    headers += [(name, value) for name, value in extra.items() if name.lower() not in {"from", "to", "cc", "reply-to"}]
    return [_checked(name, value) for name, value in headers]


def _checked(name: str, value: Any) -> tuple[str, Any]:
    """``forbid_multi_line_headers(name, value, "utf-8")``, without its cost for a value it gives back as it
    is: single-line ASCII, and for the subject only when it is short and plain (else ``Header`` folds it)."""
    value = str(value)  # it may be lazy
    if (value.isascii() and "\n" not in value and "\r" not in value
            and (name.lower() != "subject" or (len(value) <= _SUBJECT_AS_IS and _PLAIN_VALUE.fullmatch(value)))):
        return name, value
    return forbid_multi_line_headers(name, value, "utf-8")
