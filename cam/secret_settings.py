"""Who may say which variable holds a secret and where that secret is sent, and the record of each change.

A secret leaves CAM towards a place a record names: a mailbox logs in to its SMTP and IMAP hosts
with the passwords it names (or, connected with OAuth2, with an access token for its account), a
lead source sends its token to its URL, an alert channel signs with its secret. Whoever may change
the name *or* the place may send the secret anywhere, so both need the permission
``cam.change_secret_settings`` (superusers have it; grant it to few). Changing a place is free
while the record names no secret to send there.

Every change to a guarded value is recorded as a ``SecretSettingChange`` (who, when, old and new
value: names and addresses, never a secret), through ``secret_changes_record`` whatever the door.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import capfirst

from cam.models import AlertChannel, LeadSource, Mailbox, SecretSettingChange

PERMISSION = "cam.change_secret_settings"


@dataclass(frozen=True)
class Secret:
    """A field naming a secret's variable, and the fields saying where that secret goes."""

    name_field: str
    destination_fields: tuple[str, ...] = ()


# Fields of a lead source's ``config`` are spelled ``config.<key>``.
GUARDED: dict[type[models.Model], tuple[Secret, ...]] = {
    Mailbox: (
        Secret("smtp_password_env", ("smtp_host", "smtp_port", "smtp_security", "smtp_username")),
        Secret("imap_password_env", ("imap_host", "imap_port", "imap_security", "imap_username")),
        Secret("resend_api_key_env"),  # sent to the operator's Resend API URL only
        # An OAuth2 mailbox sends its access token (got with the stored refresh token) to its SMTP and IMAP
        # hosts as it logs in: choosing the provider, or moving a host while one is chosen, decides where
        # a bearer token for the account goes.
        Secret("oauth_provider", ("smtp_host", "smtp_port", "smtp_security", "smtp_username",
                                  "imap_host", "imap_port", "imap_security", "imap_username")),
    ),
    AlertChannel: (Secret("url_env"), Secret("secret_env")),
    LeadSource: (Secret("config.auth_env", ("config.url",)),),
}


@dataclass(frozen=True)
class Change:
    field: str
    old: str
    new: str
    label: str


def _label(model: type[models.Model], field: str) -> str:
    if field.startswith("config."):
        return f"{field.removeprefix('config.')} (in the configuration)"  # a JSON key, as staff type it
    return capfirst(str(cast("models.Field[Any, Any]", model._meta.get_field(field)).verbose_name))  # a column


def guarded_fields(model: type[models.Model]) -> list[str]:
    """The model's guarded fields, secret names first; [] for a model that holds no secret's name."""
    secrets = GUARDED.get(model, ())
    return [s.name_field for s in secrets] + [f for s in secrets for f in s.destination_fields]


def secret_name_fields(model: type[models.Model]) -> list[str]:
    return [s.name_field for s in GUARDED.get(model, ()) if not s.name_field.startswith("config.")]


def _reader(get: Callable[[str], Any]) -> Callable[[str], str]:
    def read(field: str) -> str:
        if field.startswith("config."):
            config = get("config")
            value = config.get(field.removeprefix("config.")) if isinstance(config, dict) else None
        else:
            value = get(field)
        return "" if value is None else str(value)
    return read


def secret_changes(model: type[models.Model], *, before: Callable[[str], Any] | None,
                   after: Callable[[str], Any]) -> tuple[list[Change], list[Change]]:
    """(every guarded change, the ones that need ``PERMISSION``) between two states of a record.

    ``before`` and ``after`` read a field's value (``None`` for ``before`` on a new record). A
    secret's name changing needs the permission; so does a destination of a secret changing while
    the record, after the change, names that secret.
    """
    read_after = _reader(after)
    read_before = _reader(before) if before else (lambda field: "")
    changes: list[Change] = []
    guarded: list[Change] = []
    for secret in GUARDED.get(model, ()):
        names_secret = bool(read_after(secret.name_field))
        for field in (secret.name_field, *secret.destination_fields):
            old, new = read_before(field), read_after(field)
            if old == new:
                continue
            # A host is the destination of more than one secret (a password, an OAuth2 token): one change.
            change = next((c for c in changes if c.field == field), None)
            if change is None:
                change = Change(field, old, new, _label(model, field))
                changes.append(change)
            if (field == secret.name_field or names_secret) and change not in guarded:
                guarded.append(change)
    return changes, guarded


def may_change_secret_settings(user: AbstractUser | AnonymousUser | None) -> bool:
    return bool(user and user.has_perm(PERMISSION))


def secret_changes_check(*, user: AbstractUser | AnonymousUser | None, guarded: list[Change]) -> None:
    """Raise ``ValidationError``, keyed by model field, for each guarded change ``user`` may not make."""
    if not guarded or may_change_secret_settings(user):
        return
    problems: dict[str, list[str]] = {}
    for change in guarded:
        problems.setdefault(change.field.split(".")[0], []).append(
            f"Changing {change.label} needs the permission “Can change secret variable names and where secrets "
            f"are sent”, because it decides where a secret goes. Ask a superuser to make this change.")
    raise ValidationError(problems, code="secret_settings_permission")


def secret_changes_record(*, obj: models.Model, changes: list[Change], actor: str) -> None:
    """Record ``changes`` made to ``obj`` (saved, so it has its id) by ``actor``."""
    if not changes:
        return
    SecretSettingChange.objects.bulk_create([
        SecretSettingChange(actor=actor[:200], model=str(obj._meta.verbose_name), object_id=obj.pk,
                            object_repr=str(obj)[:300], field=change.field[:100], old_value=change.old[:500],
                            new_value=change.new[:500])
        for change in changes])
