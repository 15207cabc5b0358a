"""API keys: created here or with `manage.py cam_api_key`, shown once, stored hashed, revocable."""

from __future__ import annotations

from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from cam.models import CamAPIKey

# The library registers its own APIKey model, which CAM does not use: staff see one kind of key.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(CamAPIKey)
class CamAPIKeyAdmin(APIKeyModelAdmin):
    """The library's admin prints the key once, in the message after "Save"; only its hash is stored,
    so no page can show it again. Revoking cannot be undone."""

    list_display = ["name", "prefix", "read_only", "created", "expiry_date", "_has_expired", "revoked"]
    list_filter = ["read_only", "revoked", "created"]
    fields = ["name", "prefix", "read_only", "expiry_date", "revoked", "created"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "created")

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead: the row stays as the record of a key that once worked.
        return False

    @admin.action(description="Revoke selected API keys (cannot be undone)")
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked=False).update(revoked=True)
        self.message_user(request, f"{revoked} API key(s) revoked; requests with them are refused from now on.",
                          messages.SUCCESS)
