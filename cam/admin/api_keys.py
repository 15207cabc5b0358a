"""API keys: created here or with `manage.py cam_api_key`, shown once, stored hashed, revocable."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from cam.models import CamAPIKey

# The library registers its own APIKey model, which CAM does not use: staff see one kind of key.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class CamAPIKeyForm(forms.ModelForm):
    class Meta:
        model = CamAPIKey
        fields = ["name", "read_only", "expiry_date", "revoked"]

    def clean_name(self) -> str:
        # The name is how audit trails (``api-key:<name>``) and ``cam_api_key revoke`` tell keys apart.
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name that says who or what uses it.")
        if CamAPIKey.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"An API key named {name!r} exists already; names tell keys apart.")
        return name


@admin.register(CamAPIKey)
class CamAPIKeyAdmin(APIKeyModelAdmin):
    """Only the key's hash is stored, so no page can show it again once it is created. The new key is
    shown on the page that answers "Save" itself — not in a flash message, which Django keeps in a
    cookie (or the session table) until the next page. Revoking cannot be undone."""

    form = CamAPIKeyForm
    list_display = ["name", "prefix", "read_only", "created", "expiry_date", "_has_expired", "revoked"]
    list_filter = ["read_only", "revoked", "created"]
    fields = ["name", "prefix", "read_only", "expiry_date", "revoked", "created"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "created")

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead: the row stays as the record of a key that once worked.
        return False

    def save_model(self, request, obj, form=None, change=False) -> None:
        if obj.pk:
            obj.save()
            return
        request.cam_new_api_key = self.model.objects.assign_key(obj)
        obj.save()

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "cam_new_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "title": "New API key", "api_key": obj, "key": key,
                   "opts": self.model._meta}
        response = TemplateResponse(request, "admin/cam/camapikey/created.html", context)
        response["Cache-Control"] = "no-store"  # the page holds the key: no cache may keep it
        return response

    @admin.action(description="Revoke selected API keys (cannot be undone)", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked=False).update(revoked=True)
        self.message_user(request, f"{revoked} API key(s) revoked; requests with them are refused from now on.",
                          messages.SUCCESS)
