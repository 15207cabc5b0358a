"""Signed return paths (VERP): a bounce that proves which email of ours it is about.

A mail server sends its bounce to the envelope sender (``MAIL FROM``, kept by the receiving server as
``Return-Path``), not to the ``From`` a person reads. With ``Mailbox.verp_return_path`` on, an SMTP
mailbox sends each email with the envelope sender ``<local>+b-<id>-<signature>@<domain>``, where
``<local>@<domain>`` is the mailbox's address, ``<id>`` the OutboundEmail's id and ``<signature>`` an
HMAC of it under ``SECRET_KEY`` (its own salt, 80 bits kept). The bounce comes back to that address —
the mailbox, when its domain delivers plus addresses to it — and its ``Delivered-To`` or ``To`` names
the email even when the bounce carries nothing else of ours. Nobody without the key can make one up
for another email.

Both parts are written in base 36 (digits and lower-case letters): mail servers may lower-case an
address on the way (Postfix's ``Delivered-To`` does), which would break a case-sensitive token. The
whole local part stays within RFC 5321's 64 characters: a mailbox whose own local part leaves no room
for the token cannot turn it on, and an address that would still be too long is not used (that email
goes out with the plain address; its bounces are proven by our Message-ID as before).

Rotating ``SECRET_KEY`` keeps the old key's return paths valid while it is listed in
``SECRET_KEY_FALLBACKS``. Resend sends through its own return path, so this is for SMTP only.

Sending signs (``cam.outreach.messages``), bounce matching verifies (``cam.inbox.matching``) and the
``Mailbox`` model checks that its address can carry one; so this module stands apart from all three
and imports no other part of CAM when it runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import base36_to_int, int_to_base36

if TYPE_CHECKING:
    from cam.models import OutboundEmail

SALT = "cam.return-path"
TAG = "b-"
SIGNATURE_LENGTH = 16  # 80 bits in base 36
LONGEST_ID = 13  # an id up to 2**63 in base 36
LOCAL_PART_MAX = 64  # RFC 5321, 4.5.3.1.1
# "+b-" <id> "-" <signature>: what the token adds to the mailbox's local part at most.
TOKEN_MAX = len("+") + len(TAG) + LONGEST_ID + len("-") + SIGNATURE_LENGTH
_SIGNED = re.compile(rf"\+{TAG}([0-9a-z]{{1,{LONGEST_ID}}})-([0-9a-z]{{{SIGNATURE_LENGTH}}})@", re.I)


def _signature(outbound_id: int, secret: str | bytes) -> str:
    digest = salted_hmac(SALT, str(outbound_id), secret=secret, algorithm="sha256").digest()
    return int_to_base36(int.from_bytes(digest[:10], "big")).rjust(SIGNATURE_LENGTH, "0")


def return_path_problem(from_email: str) -> str:
    """Why the mailbox address ``from_email`` cannot carry a signed return path; ``""`` when it can."""
    local = from_email.rpartition("@")[0]
    if "+" in local:
        return ("The mailbox's address already has a plus part; the signed return path needs its own "
                "(alex+b-…@…).")
    if len(local) + TOKEN_MAX > LOCAL_PART_MAX:
        return (f"The part of the mailbox's address before the @ is too long for a signed return path: at most "
                f"{LOCAL_PART_MAX - TOKEN_MAX} characters leave room for the token.")
    return ""


def signed_return_path(outbound: OutboundEmail) -> str:
    """The envelope sender ``outbound`` goes out with; ``""`` when its mailbox uses its plain address."""
    mailbox = outbound.mailbox
    if mailbox is None or not mailbox.verp_return_path or outbound.pk is None:
        return ""
    local, _, domain = mailbox.from_email.rpartition("@")
    signed = f"{local}+{TAG}{int_to_base36(outbound.pk)}-{_signature(outbound.pk, settings.SECRET_KEY)}"
    if return_path_problem(mailbox.from_email) or len(signed) > LOCAL_PART_MAX:
        return ""
    return f"{signed}@{domain}"


def outbound_id_from_return_path(address: str) -> int | None:
    """The OutboundEmail id a signed return path names, or ``None`` when ``address`` is not one or its
    signature does not verify (altered, made up, or signed with a key no longer listed)."""
    found = _SIGNED.search(address or "")
    if found is None:
        return None
    id_part, signature = found.group(1).lower(), found.group(2).lower()
    try:
        outbound_id = base36_to_int(id_part)
    except ValueError:
        return None
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if constant_time_compare(_signature(outbound_id, secret), signature):
            return outbound_id
    return None
