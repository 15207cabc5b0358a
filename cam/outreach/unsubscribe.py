"""Unsubscribe links and headers: the signed token every campaign email carries, reading it back, and
what using the link does (``unsubscribe_by_link``).

The token is the lead's id signed with ``SECRET_KEY`` under a salt of its own: it cannot be
guessed or altered, and it does not expire, because a link in a months-old email must still
work. Rotating ``SECRET_KEY`` would break every link already sent unless the old key stays in
``SECRET_KEY_FALLBACKS``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes

from cam.leads import lead_unsubscribe
from cam.models import Lead, Mailbox, OutboundEmail

SALT = "cam.unsubscribe"
# RFC 8058: what a mail provider posts, as form data, when the recipient clicks "Unsubscribe".
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"


class InvalidUnsubscribeToken(Exception):
    """The token was cut, altered or made up, or its lead no longer exists."""


def unsubscribe_token(lead: Lead) -> str:
    """A URL-safe token that names ``lead`` and only it: ``Signer(salt=SALT).sign_object(lead.pk)``, made
    here with the signing key derived once rather than for every email sent. ``sign_object`` writes an
    id as its JSON (its digits) in URL-safe base64, then signs that with an HMAC (SHA-256) whose key is
    the hash of the salt and ``SECRET_KEY``."""
    value = signing.b64_encode(str(int(lead.pk)).encode())
    digest = hmac.digest(_signing_key(settings.SECRET_KEY), value, "sha256")  # one call, no HMAC object
    return f"{value.decode()}:{signing.b64_encode(digest).decode()}"


@functools.lru_cache(maxsize=4)
def _signing_key(secret_key: str) -> bytes:
    """``salted_hmac``'s key for the unsubscribe salt: the same for every token while ``SECRET_KEY`` is."""
    return hashlib.sha256(f"{SALT}signer".encode() + force_bytes(secret_key)).digest()


def lead_from_token(token: str) -> Lead:
    """The lead a token names. Raises ``InvalidUnsubscribeToken`` for anything else."""
    try:
        lead_id = signing.Signer(salt=SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        raise InvalidUnsubscribeToken("The unsubscribe token is not valid.") from None
    if not isinstance(lead_id, int) or isinstance(lead_id, bool):
        raise InvalidUnsubscribeToken("The unsubscribe token does not name a lead.")
    try:
        return Lead.objects.get(pk=lead_id)
    except Lead.DoesNotExist:
        raise InvalidUnsubscribeToken("The lead of this unsubscribe token no longer exists.") from None


def unsubscribe_url(lead: Lead, *, token: str | None = None) -> str:
    """The absolute one-click URL (``AICMO_CAM_PUBLIC_URL``, which must be https in production)."""
    token = token or unsubscribe_token(lead)
    before, after = _path_around_token(settings.ROOT_URLCONF, get_urlconf(), get_script_prefix())
    return f"{settings.AICMO_CAM_PUBLIC_URL}{before}{token}{after}"


@functools.lru_cache(maxsize=8)
def _path_around_token(root_urlconf: str, urlconf: str | None, script_prefix: str) -> tuple[str, str]:
    """The unsubscribe path before and after its token, reversed once per URL configuration rather
    than for every email (reversing costs more than signing). A token is URL-safe base64 and colons,
    which ``reverse`` leaves as they are, so putting it in its place gives what ``reverse`` would."""
    before, _, after = reverse("cam:unsubscribe", kwargs={"token": _PLACEHOLDER}).partition(_PLACEHOLDER)
    return before, after


_PLACEHOLDER = "token-goes-here"


def unsubscribe_mailto(lead: Lead, mailbox: Mailbox, *, token: str | None = None) -> str:
    """A mailto: URL whose subject carries the token, so an emailed request can be matched to the lead."""
    address = mailbox.reply_to or mailbox.from_email
    token = token or unsubscribe_token(lead)
    # ``quote(f"unsubscribe {token}", safe=":")``, written out: a token is URL-safe base64 and colons,
    # which quoting leaves as they are, so only the space changes.
    return f"mailto:{address}?subject=unsubscribe%20{token}"


def list_unsubscribe_headers(lead: Lead, mailbox: Mailbox) -> dict[str, str]:
    """``List-Unsubscribe`` (RFC 2369: the https URL first, then mailto) and ``List-Unsubscribe-Post`` (RFC 8058)."""
    token = unsubscribe_token(lead)  # signed once for both addresses: this runs for every email sent
    return {
        "List-Unsubscribe": (f"<{unsubscribe_url(lead, token=token)}>, "
                             f"<{unsubscribe_mailto(lead, mailbox, token=token)}>"),
        "List-Unsubscribe-Post": f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}",
    }


@transaction.atomic
def unsubscribe_by_link(*, lead: Lead, one_click: bool) -> bool:
    """The recipient used the link in an email's footer (the page's button, or their mail client's
    one-click unsubscribe): the lead unsubscribes as by any door (``cam.leads.lead_unsubscribe``), and
    the latest email sent to it records when (``unsubscribed_at``), so the metrics and rules count the
    unsubscribe against that email, as they count an unsubscribe reply against the email it answers.
    The link names the lead only, so the latest email stands for the one clicked. Safe to repeat: an
    email counts once. Returns whether anything changed."""
    changed = lead_unsubscribe(lead=lead, source="one-click unsubscribe from the mail client" if one_click
                               else "unsubscribe page")
    latest = (OutboundEmail.objects.filter(lead_id=lead.pk, status=OutboundEmail.Status.SENT, sent_at__isnull=False)
              .order_by("-sent_at", "-pk").values_list("pk", "unsubscribed_at").first())
    if latest is None or latest[1] is not None:
        return changed
    now = timezone.now()
    OutboundEmail.objects.filter(pk=latest[0]).update(unsubscribed_at=now, updated_at=now)
    return True


def masked_email(email: str) -> str:
    """``j***@example.com``: enough for a person to recognise their address, little for anyone else."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
