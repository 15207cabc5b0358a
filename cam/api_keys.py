"""API keys: creating them and changing what may change, for the admin and ``manage.py cam_api_key`` alike.

A key's name and revocation may change later; its rights (``read_only``) and expiry may not
(``cam.models.api_keys.FIXED_FIELDS``): a read-only key stays read-only. Who may call these is the
door's business: the admin asks for ``cam.create_api_key`` before it creates a key; the command is
run by whoever holds the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cam.models import CamAPIKey
from cam.models.api_keys import FIXED_FIELDS
from cam.models.fields import max_length

NAME_MAX_LENGTH = max_length(CamAPIKey, "name")
CHANGEABLE_FIELDS = ("name", "revoked")


def api_key_name_clean(name: str, *, exclude_pk: str | None = None) -> str:
    """The name trimmed, or ``ValidationError``: empty, too long, or another key's in any case. The
    name is how audit trails (``api-key:<name>``) and ``cam_api_key revoke`` tell keys apart."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("The key needs a name that says who or what uses it.")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(f"The name is {len(name)} characters long; at most {NAME_MAX_LENGTH} are allowed.")
    if CamAPIKey.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ValidationError(f"An API key named {name!r} exists already; names tell keys apart (revoke the "
                              "old key and give the new one another name).")
    return name


def api_key_expiry_clean(expiry_date: datetime | None) -> datetime | None:
    if expiry_date is not None and expiry_date <= timezone.now():
        raise ValidationError("The expiry date is in the past: the key would never work.")
    return expiry_date


@transaction.atomic
def api_key_create(*, name: str, read_only: bool = False,
                   expiry_date: datetime | None = None) -> tuple[CamAPIKey, str]:
    """A new key and the key itself, which exists nowhere else: show it once. Raises ``ValidationError``."""
    name = api_key_name_clean(name)
    expiry_date = api_key_expiry_clean(expiry_date)
    # The library types create_key as returning its abstract model, whichever model it creates.
    return CamAPIKey.objects.create_key(name=name, read_only=bool(read_only), expiry_date=expiry_date)  # type: ignore[return-value]


@transaction.atomic
def api_key_change(*, api_key: CamAPIKey, **changes: Any) -> CamAPIKey:
    """Rename or revoke ``api_key`` (``name=``, ``revoked=``). Its rights and expiry are refused with a
    ``ValidationError``, as is un-revoking it. Returns the key as stored."""
    fixed = [name for name in FIXED_FIELDS if name in changes]
    if fixed:
        raise ValidationError({name: "Fixed when the key was created: create a new key (and revoke this one) "
                                     "instead." for name in fixed})
    unknown = sorted(set(changes) - set(CHANGEABLE_FIELDS))
    if unknown:
        raise ValueError(f"An API key's {', '.join(unknown)} cannot be changed.")
    stored = CamAPIKey.objects.select_for_update().get(pk=api_key.pk)
    if "name" in changes:
        stored.name = api_key_name_clean(changes["name"], exclude_pk=stored.pk)
    if "revoked" in changes:
        if stored.revoked and not changes["revoked"]:
            raise ValidationError({"revoked": "The key was revoked, which cannot be undone."})
        stored.revoked = bool(changes["revoked"])
    if changes:
        stored.save(update_fields=list(changes))
    return stored
