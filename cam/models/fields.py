"""Model fields and validators shared by the CAM tables."""

from __future__ import annotations

import re
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from cam.crypto import Sealed, encrypt, looks_encrypted


class LowercaseEmailField(models.EmailField):
    """An address stored and looked up in lower case.

    Dedupe, suppression and threading all compare addresses, and mail systems treat them
    case-insensitively in practice, so the database only ever holds one spelling.
    """

    def to_python(self, value):
        value = super().to_python(value)
        return value.strip().lower() if isinstance(value, str) else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.strip().lower() if isinstance(value, str) else value


class LowercaseCharField(models.CharField):
    """Text stored and looked up in lower case (domains)."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.strip().lower() if isinstance(value, str) else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.strip().lower() if isinstance(value, str) else value


# Kept for the migrations that name it; fields that name a secret use cam.secrets.validate_secret_name.
validate_env_name = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*$",
    "Enter the name of an environment variable (letters, digits and underscores), not the secret itself.",
)

validate_domain = RegexValidator(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    "Enter a domain such as example.com.",
    flags=re.IGNORECASE,
)


def validate_timezone(value: str) -> None:
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    # The zone database is read as files: an overlong name fails there (OSError), a NUL byte as ValueError.
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError("%(value)s is not a known time zone (use a name such as Europe/Berlin).",
                              params={"value": value}) from None


WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def validate_weekdays(value) -> None:
    """A send window's days: a non-empty list of distinct ISO weekday numbers 1 (Monday) to 7."""
    if not isinstance(value, list) or not value:
        raise ValidationError("Choose at least one day of the week.")
    if any(not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 7 for day in value):
        raise ValidationError("Days are numbers from 1 (Monday) to 7 (Sunday).")
    if len(set(value)) != len(value):
        raise ValidationError("Each day may appear once.")


def validate_string_list(value) -> None:
    if not isinstance(value, list) or any(not isinstance(item, str) for item in value):
        raise ValidationError("Enter a list of words or phrases.")


def max_length(model: type[models.Model], name: str) -> int:
    """The ``max_length`` of ``model``'s text field ``name``, for code that cuts or checks a value to fit it.

    ``_meta.get_field`` may return a relation or a field without a limit, so its ``max_length`` is an
    optional; asking for one that is not there is a mistake in the code, caught when the module loads.
    """
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.max_length is None:
        raise TypeError(f"{model.__name__}.{name} is not a field with a max_length")
    return field.max_length


class EncryptedTextField(models.TextField):
    """A secret CAM must store itself (an OAuth2 refresh token), encrypted at rest (``cam.crypto``).

    The column holds the Fernet token; the attribute is a ``Sealed`` (redacted in ``str``/``repr``, opened
    by ``reveal()``), or a plain ``str`` just assigned, encrypted when saved. Empty means no secret. Not
    editable: no admin form or serializer built from the model shows it; dumps carry the ciphertext.
    """

    # What mypy's Django plugin reads as the attribute's types: set with a secret or a Sealed, read as a Sealed.
    _pyi_private_set_type: Sealed | str  # type: ignore[assignment]
    _pyi_private_get_type: Sealed  # type: ignore[assignment]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def _what(self) -> str:
        return f"{self.model._meta.verbose_name}'s {self.verbose_name}" if hasattr(self, "model") else "a secret"

    def from_db_value(self, value, expression, connection):
        return Sealed(value or "", what=self._what())

    def to_python(self, value):
        if value is None or isinstance(value, Sealed):
            return value
        # A dump being loaded carries ciphertext; anything else is a secret just given.
        return Sealed(value, what=self._what()) if looks_encrypted(value) else value

    def get_prep_value(self, value):
        if value is None:
            return None
        if isinstance(value, Sealed):
            return value.ciphertext
        value = str(value)
        return encrypt(value) if value else ""

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return self.get_prep_value(value) or ""
