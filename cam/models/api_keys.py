"""Keys for the REST API: stored hashed by djangorestframework-api-key, shown once when created."""

from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class CamAPIKeyManager(BaseAPIKeyManager):
    pass


class CamAPIKey(AbstractAPIKey):
    """An API key. A read-only key may only read (GET, HEAD, OPTIONS); a full key may also write and
    run jobs. Revoking a key (``revoked``) refuses it at once; it cannot be un-revoked."""

    read_only = models.BooleanField(
        default=False, help_text="Read-only keys may list and read; they cannot change anything or run jobs.")

    objects = CamAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({'read-only' if self.read_only else 'full'})"
