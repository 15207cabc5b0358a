"""Saved answers: texts staff insert into an answer to a reply, with the variables of a sequence step."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from unfold.admin import ModelAdmin
from unfold.widgets import UnfoldAdminTextareaWidget

from cam.models import AnswerSnippet
from cam.outreach.rendering import check_snippet


class AnswerSnippetForm(forms.ModelForm):
    """Refuses a text that does not render, with the template engine's message, before anyone inserts it."""

    class Meta:
        model = AnswerSnippet
        fields = ["name", "body"]
        widgets = {"body": UnfoldAdminTextareaWidget(attrs={"rows": 8})}

    def clean_body(self) -> str:
        body = self.cleaned_data["body"]
        problem = check_snippet(body)
        if problem:
            raise forms.ValidationError(problem)
        return body


@admin.register(AnswerSnippet)
class AnswerSnippetAdmin(ModelAdmin):
    form = AnswerSnippetForm
    list_display = ["name", "updated_at"]
    search_fields = ["name", "body"]
