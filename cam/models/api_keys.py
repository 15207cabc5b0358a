"""Keys for the REST API: stored hashed by djangorestframework-api-key, shown once when created."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

# What a key may do and until when are decided when it is created and never after: whoever may rename
# or revoke keys must not be able to turn a read-only key into a full one, or keep a key working past
# the date it was meant to stop. A different key is a new key (and the old one revoked).
FIXED_FIELDS = ("read_only", "expiry_date")


class CamAPIKeyManager(BaseAPIKeyManager):
    pass


class CamAPIKey(AbstractAPIKey):
    """An API key. A read-only key may only read (GET, HEAD, OPTIONS); a full key may also write and
    run jobs. Revoking a key (``revoked``) refuses it at once; it cannot be un-revoked. Its rights and
    expiry (``FIXED_FIELDS``) cannot change once it is saved; creating one needs the permission
    ``cam.create_api_key`` (see ``cam.api_keys``)."""

    read_only = models.BooleanField(
        default=False, help_text="Read-only keys may list and read; they cannot change anything or run jobs.")

    # The library types ``objects`` as its own APIKeyManager; any manager of its base class will do.
    objects = CamAPIKeyManager()  # type: ignore[misc, assignment]

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        # No "add": creating a key hands out access to the API, so it is a permission of its own that
        # no one gets by being allowed to edit keys; no "delete": keys are revoked, never deleted.
        default_permissions = ("change", "view")
        permissions = [("create_api_key", "Can create API keys")]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fixed_as_loaded = self._fixed_values()

    def _fixed_values(self) -> dict[str, object]:
        # Read from __dict__ so a deferred field is not loaded (one query per key) just to be remembered.
        return {name: self.__dict__[name] for name in FIXED_FIELDS if name in self.__dict__}

    def save(self, *args, **kwargs) -> None:
        # Every door comes through here, so no door can change what a stored key may do.
        if not self._state.adding:
            changed = [name for name, value in self._fixed_as_loaded.items() if self.__dict__.get(name, value) != value]
            if changed:
                raise ValidationError({name: "Fixed when the key was created: create a new key (and revoke this "
                                             "one) instead." for name in changed})
        super().save(*args, **kwargs)
        self._fixed_as_loaded = self._fixed_values()

    def __str__(self) -> str:
        return f"{self.name} ({'read-only' if self.read_only else 'full'})"
