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
    """Every step of ``campaign`` (``steps``: all of them, as saved) rendered for ``lead`` as the sender
    would send it, by step id: the email, or the ``TemplateProblem`` that stops it. A follow-up's subject
    is "Re: " and the subject the lead's first email went out with, or, before it has, the first step's
    subject rendered for the lead (the first enabled step: a disabled one is shown as it would read, but
    the planner passes over it). A fixed number of queries, however many steps: the mailbox, and the
    subject of the lead's first email."""
    if not steps:
        return {}
    mailbox = lead.mailbox or campaign.mailboxes.filter(is_active=True).first()
    context = template_context(lead=lead, campaign=campaign, mailbox=mailbox, unsubscribe_url=unsubscribe_url(lead))
    first = first_step(steps)  # None when every step is disabled: each then shows as a first email would
    first_subject = (OutboundEmail.objects.filter(lead=lead, step=first).values_list("subject", flat=True).first()
                     if first is not None else None)
    previews: dict[int, RenderedEmail | TemplateProblem] = {}
    for step in sorted(steps, key=lambda step: step.position):  # the first before the follow-ups that reuse it
        rendered: RenderedEmail | TemplateProblem
        try:
            rendered = render_step(step=step, context=context,
                                   first_subject="" if step is first else first_subject or "")
        except TemplateProblem as problem:
            rendered = problem
        if step is first and not first_subject and isinstance(rendered, RenderedEmail):
            first_subject = rendered.subject
        previews[step.pk] = rendered
    return previews
