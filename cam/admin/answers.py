"""The composer under a conversation: a person answers a reply from CAM (``cam.outreach.answers``).

The form carries a key made when the page was drawn, so submitting it twice (a double click, the
browser's "resend") names the same answer and sends nothing more. Saved answers are offered rendered
for this lead; picking one inserts its text where the cursor is.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from unfold.widgets import UnfoldAdminTextareaWidget

from cam.models import InboundEmail
from cam.outreach.answers import AnswerRefused, answer_key, answer_mailbox, answer_send, answer_subject, snippets_for


class AnswerForm(forms.Form):
    body = forms.CharField(label="Your answer", widget=UnfoldAdminTextareaWidget(attrs={"rows": 8, "x-ref": "body"}),
                           help_text="Sent as it is, with the compliance footer under it.")
    key = forms.CharField(widget=forms.HiddenInput)


def composer_context(request: HttpRequest, inbound: InboundEmail, *, action: str) -> dict[str, Any] | None:
    """What the composer shows under the conversation of ``inbound``: the form (with a fresh key), the
    saved answers rendered for this lead, and what the answer will be sent as. None when there is no lead
    to answer. Who may answer is the thread view's to decide (cam.admin.desk_thread)."""
    if inbound.lead_id is None:
        return None
    mailbox = answer_mailbox(inbound)
    return {
        "form": AnswerForm(initial={"key": answer_key()}),
        "action": action,
        "snippets": [{"name": snippet.name, "text": text} for snippet, text in snippets_for(inbound)],
        "from_email": mailbox.from_email if mailbox else "",
        "mailbox_active": bool(mailbox and mailbox.is_active),
        "to_email": inbound.from_email,
        "subject": answer_subject(inbound.subject),
    }


def answer_view(request: HttpRequest, inbound: InboundEmail, *, back: str) -> HttpResponseRedirect:
    """Send the composer's answer to ``inbound`` (the caller has checked the method and the permission),
    then back to ``back`` (a URL name taking the reply's id) with what became of it."""
    form = AnswerForm(request.POST)
    target = reverse(back, args=[inbound.pk])
    if not form.is_valid():
        messages.error(request, "Write the answer first: it is empty.")
        return HttpResponseRedirect(target)
    try:
        answered = answer_send(inbound=inbound, author=request.user, body=form.cleaned_data["body"],  # type: ignore[arg-type]
                               key=form.cleaned_data["key"])
    except AnswerRefused as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(target)
    email = answered.email
    if not answered.sent_now:
        messages.info(request, f"This answer was already sent ({email.get_status_display().lower()}): nothing "
                               "was sent again.")
    elif email.status == email.Status.SENT:
        messages.success(request, f"Answer sent to {email.to_email} from {email.from_email}.")
    elif email.status == email.Status.UNKNOWN:
        messages.warning(request, f"It is unknown whether the answer went out: {email.last_error} Check the "
                                  "mailbox's sent folder before writing again.")
    else:
        messages.error(request, f"The answer was not sent. {email.last_error}")
    return HttpResponseRedirect(target)
