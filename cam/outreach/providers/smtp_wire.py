"""What an SMTP server receives for a message: its envelope addresses and its bytes, exactly as Django's
SMTP backend makes them, at a fraction of the cost.

Making them was most of what sending cost us per email beyond the SMTP conversation itself: Python's
``email`` package folds every header through ``email.header.Header`` (about ten per message, 20 µs
each), and ``sanitize_address`` runs the RFC 5322 address parser on the recipient. For the values
almost every message holds — a printable ASCII header value that fits on its line, a plain
``local@domain`` address — both give back their input unchanged, so that case skips them; anything
else (non-ASCII, a long header to fold, a display name, a quoted local part) goes through Django and
the ``email`` package as before. tests/outreach/test_smtp_wire.py checks both ways give the same bytes.
"""

from __future__ import annotations

import re
from email import generator
from email.message import Message
from email.policy import Compat32
from io import BytesIO

from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address

# Printable ASCII with no trailing white space: what ``Header.encode`` gives back as it is when it fits.
_PLAIN_VALUE = re.compile(r"[\x20-\x7e]*[\x21-\x7e]")
# A dot-atom local part and a domain of letters, digits and hyphens: what ``sanitize_address`` gives back
# as it is (no display name, nothing to quote, nothing to encode, no IDNA to apply).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]{1,63}"  # longer labels are refused by the IDNA codec, so by sanitize_address
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")


class _PlainHeadersFirst(Compat32):
    """The ``compat32`` policy Django's messages use, writing a plain header value that fits on its line
    without building a ``Header`` to fold it (which would give back the same line)."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if (isinstance(value, str) and len(name) + 2 + len(value) <= (self.max_line_length or 1_000_000)
                and _PLAIN_VALUE.fullmatch(value)):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_SMTP_POLICY = _PlainHeadersFirst(linesep="\r\n")


def envelope_address(address: str, encoding: str) -> str:
    """``sanitize_address(address, encoding)``; raises ``ValueError`` for an address it refuses."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, encoding)


def message_bytes(message: EmailMessage) -> bytes:
    """``message.message().as_bytes(linesep="\\r\\n")``, as Django's SMTP backend sends it."""
    return mime_bytes(message.message())


def mime_bytes(mime: Message) -> bytes:
    """``mime.as_bytes(linesep="\\r\\n")`` for one of Django's MIME messages (``SafeMIMEText``, …)."""
    out = BytesIO()
    generator.BytesGenerator(out, mangle_from_=False, policy=_SMTP_POLICY).flatten(mime, unixfrom=False)
    return out.getvalue()
