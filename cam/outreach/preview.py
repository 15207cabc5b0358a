"""A step rendered for a lead exactly as the sender would render it, for staff to look at."""

from __future__ import annotations

from cam.models import Lead, OutboundEmail, SequenceStep
from cam.outreach.rendering import RenderedEmail, render_step, template_context
from cam.outreach.unsubscribe import unsubscribe_url


def preview_step(*, step: SequenceStep, lead: Lead) -> RenderedEmail:
    """Raises ``TemplateProblem`` when the step does not render."""
    mailbox = lead.mailbox or step.campaign.mailboxes.filter(is_active=True).first()
    first = (OutboundEmail.objects.filter(lead=lead, step__position=1).values_list("subject", flat=True).first()
             or "")
    return render_step(step=step, first_subject=first, context=template_context(
        lead=lead, campaign=step.campaign, mailbox=mailbox, unsubscribe_url=unsubscribe_url(lead)))
