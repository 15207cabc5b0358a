"""The admin's door onto ``cam.secret_settings``: forms that refuse what the user may not change, and
the record of what was changed, for mailboxes, alert channels and lead sources (inline too)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from cam.leads import staff_actor
from cam.secret_settings import (
    guarded_fields,
    may_change_secret_settings,
    secret_changes,
    secret_changes_check,
    secret_changes_record,
    secret_name_fields,
)

if TYPE_CHECKING:  # the mixins below are only ever mixed into these
    _ModelAdmin = admin.ModelAdmin
    _InlineModelAdmin = admin.options.InlineModelAdmin
else:
    _ModelAdmin = _InlineModelAdmin = object


class SecretSettingsForm(forms.ModelForm):
    """Checks guarded changes against the user the admin sets on the form's class per request."""

    request_user = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A new record starts from the model's defaults: a default is not a change.
        start = self.instance if self.instance.pk else type(self.instance)()
        self._before = {field.split(".")[0]: copy.deepcopy(getattr(start, field.split(".")[0]))
                        for field in guarded_fields(type(self.instance))}
        self.secret_changes: list = []

    def clean(self):
        cleaned: dict[str, Any] = super().clean()  # type: ignore[assignment]  # a ModelForm's is never None
        changes, guarded = secret_changes(type(self.instance), before=self._before.get,
                                          after=lambda field: cleaned.get(field, self._before.get(field)))
        try:
            secret_changes_check(user=self.request_user, guarded=guarded)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        self.secret_changes = changes
        return cleaned


def _form_for(form_class, user):
    return type(form_class.__name__, (form_class,), {"request_user": user})


def record_form_changes(request, form) -> None:
    if getattr(form, "secret_changes", None) and form.instance.pk:
        secret_changes_record(obj=form.instance, changes=form.secret_changes, actor=staff_actor(request.user))
        form.secret_changes = []


class SecretSettingsAdminMixin(_ModelAdmin):
    """For a ``ModelAdmin`` of a model that names secrets."""

    form = SecretSettingsForm

    # ``change`` is not named: Django passes it by keyword, and **kwargs hands it on.
    def get_form(self, request, obj=None, **kwargs):  # type: ignore[override]
        return _form_for(super().get_form(request, obj, **kwargs), request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not may_change_secret_settings(request.user):
            fields += [f for f in secret_name_fields(self.model) if f not in fields]
        return fields

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        record_form_changes(request, form)


class SecretSettingsInlineMixin(_InlineModelAdmin):
    """For an inline of such a model; its parent admin calls ``record_inline_changes`` in ``save_formset``."""

    form = SecretSettingsForm

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = _form_for(formset.form, request.user)
        return formset


def record_inline_changes(request, formset) -> None:
    if isinstance(getattr(formset, "form", None), type) and issubclass(formset.form, SecretSettingsForm):
        for form in formset.forms:
            record_form_changes(request, form)
