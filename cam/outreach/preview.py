"""A step rendered for a lead exactly as the sender would render it, for staff to look at."""

from __future__ import annotations

from collections.abc import Sequence

from cam.models import Campaign, Lead, Mailbox, OutboundEmail, SequenceStep
from cam.models.campaigns import first_step
from cam.outreach.rendering import RenderedEmail, TemplateProblem, render_step, template_context
from cam.outreach.unsubscribe import unsubscribe_url


def _render(*, step: SequenceStep, lead: Lead, first: SequenceStep | None, mailbox: Mailbox | None) -> RenderedEmail:
    # A follow-up shows the subject of the email the lead got from the first step, as it will go out.
    first_subject = "" if first is None or first.pk == step.pk else (
        OutboundEmail.objects.filter(lead=lead, step=first).values_list("subject", flat=True).first() or "")
    return render_step(step=step, first_subject=first_subject, context=template_context(
        lead=lead, campaign=step.campaign, mailbox=mailbox, unsubscribe_url=unsubscribe_url(lead)))


def preview_step(*, step: SequenceStep, lead: Lead) -> RenderedEmail:
    """Raises ``TemplateProblem`` when the step does not render."""
    mailbox = lead.mailbox or step.campaign.mailboxes.filter(is_active=True).first()
    return _render(step=step, lead=lead, first=SequenceStep.objects.first_of(step.campaign_id), mailbox=mailbox)


def preview_steps(*, campaign: Campaign, steps: Sequence[SequenceStep],
                  lead: Lead) -> dict[int, RenderedEmail | TemplateProblem]:
    """Every step of ``campaign`` (``steps``: all of them, as saved) rendered for ``lead`` as ``preview_step``
    renders each, by step id: the email, or the ``TemplateProblem`` that stops it. A fixed number of
    queries, however many steps: the mailbox, and the subject the lead's first email went out with."""
    if not steps:
        return {}
    mailbox = lead.mailbox or campaign.mailboxes.filter(is_active=True).first()
    first = first_step(steps)
    first_subject = "" if first is None else (
        OutboundEmail.objects.filter(lead=lead, step=first).values_list("subject", flat=True).first() or "")
    previews: dict[int, RenderedEmail | TemplateProblem] = {}
    for step in steps:
        try:
            previews[step.pk] = render_step(
                step=step, first_subject="" if step is first else first_subject,
                context=template_context(lead=lead, campaign=campaign, mailbox=mailbox,
                                         unsubscribe_url=unsubscribe_url(lead)))
        except TemplateProblem as problem:
            previews[step.pk] = problem
    return previews
