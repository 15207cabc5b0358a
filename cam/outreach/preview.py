"""A step rendered for a lead exactly as the sender would render it, for staff to look at."""

from __future__ import annotations

from cam.models import Lead, OutboundEmail, SequenceStep
from cam.outreach.rendering import RenderedEmail, render_step, template_context
from cam.outreach.unsubscribe import unsubscribe_url


def preview_step(*, step: SequenceStep, lead: Lead) -> RenderedEmail:
    """Raises ``TemplateProblem`` when the step does not render."""
    mailbox = lead.mailbox or step.campaign.mailboxes.filter(is_active=True).first()
    first = SequenceStep.objects.first_of(step.campaign_id)
    # A follow-up shows the subject of the email the lead got from the first step, as it will go out.
    first_subject = "" if first is None or first.pk == step.pk else (
        OutboundEmail.objects.filter(lead=lead, step=first).values_list("subject", flat=True).first() or "")
    return render_step(step=step, first_subject=first_subject, context=template_context(
        lead=lead, campaign=step.campaign, mailbox=mailbox, unsubscribe_url=unsubscribe_url(lead)))
