"""API keys: created here or with `manage.py cam_api_key` (both through ``cam.api_keys``), shown once,
stored hashed, revocable. Creating one needs ``cam.create_api_key``; a key's rights and expiry are
shown, never edited, once it exists."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey
from unfold.admin import ModelAdmin

from cam.api_keys import api_key_change, api_key_create, api_key_expiry_clean, api_key_name_clean
from cam.models import CamAPIKey
from cam.models.api_keys import FIXED_FIELDS

# The library registers its own APIKey model, which CAM does not use: staff see one kind of key.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class CamAPIKeyForm(forms.ModelForm):
    class Meta:
        model = CamAPIKey
        fields = ["name", "read_only", "expiry_date", "revoked"]

    # The service checks again when it saves; here the refusal lands on the field it is about.
    def clean_name(self) -> str:
        return api_key_name_clean(self.cleaned_data["name"], exclude_pk=self.instance.pk)

    def clean_expiry_date(self):
        return api_key_expiry_clean(self.cleaned_data.get("expiry_date"))


@admin.register(CamAPIKey)
class CamAPIKeyAdmin(APIKeyModelAdmin, ModelAdmin):
    """Only the key's hash is stored, so no page can show it again once it is created. The new key is
    shown on the page that answers "Save" itself — not in a flash message, which Django keeps in a
    cookie (or the session table) until the next page. Revoking cannot be undone."""

    form = CamAPIKeyForm
    # The library types these as its own tuples; Django takes any sequence.
    list_display = ["name", "prefix", "read_only", "created", "expiry_date", "_has_expired", "revoked"]  # type: ignore[assignment]
    list_filter = ["read_only", "revoked", "created"]  # type: ignore[assignment]
    fields = ["name", "prefix", "read_only", "expiry_date", "revoked", "created"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        fields = (*super().get_readonly_fields(request, obj), "created")
        if obj is not None:
            fields = (*fields, *(name for name in FIXED_FIELDS if name not in fields))
        return fields

    def has_add_permission(self, request) -> bool:
        # Its own permission, not "change": editing keys must not be a way to hand out new access.
        return request.user.has_perm(f"{self.opts.app_label}.create_api_key")

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead: the row stays as the record of a key that once worked.
        return False

    def save_model(self, request, obj, form=None, change=False) -> None:
        if change:
            stored = api_key_change(api_key=obj, **{name: form.cleaned_data[name] for name in form.changed_data})
            obj.name, obj.revoked = stored.name, stored.revoked
            return
        api_key, request.cam_new_api_key = api_key_create(name=obj.name, read_only=obj.read_only,
                                                          expiry_date=obj.expiry_date)
        # The admin goes on with this object (its history entry, the answer page): make it the saved key.
        obj.__dict__.update(api_key.__dict__)

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
