"""A campaign's sequence steps: the one place that creates, changes, disables and deletes them.

The admin (the campaign's *Sequence* tab and the steps' own pages) and the API call these, so every
door applies the same rules, with the same words:

- The campaign's first email (``first_step``: its lowest enabled position) needs a subject, as
  follow-ups go out as “Re: <first subject>”.
- A step that emails were sent or queued from is never deleted: its emails, and the threads they
  started, point at it. It can be disabled instead (``is_enabled``): the planner passes over it, and
  its leads go on to the next enabled step. Its emails still waiting to go out are cancelled then, and
  their leads get the next enabled step in their place.
- Deleting an unused step moves every later step up one place, so positions 1..n stay 1..n-1, and
  moves the leads' ``current_step`` with them, so each lead still gets the step after the one it had.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from cam.models import Campaign, Lead, OutboundEmail, SequenceStep
from cam.models.campaigns import first_step

FIRST_STEP_NEEDS_SUBJECT = "The first email needs a subject; follow-ups reuse it as “Re: …”."


class StepInUse(Exception):
    """A sequence step that emails were sent from (or queued with) cannot be deleted; it can be disabled."""


class FirstStepWithoutSubject(Exception):
    """A change to other steps (a move, a deletion, disabling one) that would make a step without a subject
    the campaign's first: follow-ups reuse the first subject, and nothing could be planned for a new lead."""


def step_in_use_text(position: int, emails: int) -> str:
    """"Step 2 has 340 emails; disable it instead." — the refusal every door shows."""
    return f"Step {position} has {emails:,} email{'s' if emails != 1 else ''}; disable it instead."


def _has_subject(step: SequenceStep | None) -> bool:
    return step is not None and bool((step.subject_template or "").strip())


def sequence_check_first_step(*, before: Iterable[SequenceStep], after: Iterable[SequenceStep]) -> None:
    """The rule on a campaign's first step (``first_step``: its lowest enabled position, whatever it is): it
    needs a subject, as follow-ups go out as “Re: <first subject>”. Every door checks it here.

    ``before`` are the campaign's steps as saved, ``after`` as a change would leave them (new steps
    without a pk). Raises Django's ``ValidationError`` on ``subject_template`` when the first step is
    one the change creates, moves, enables or takes the subject from (the fix is in the same form or
    body), and ``FirstStepWithoutSubject`` naming the step when a change to others (a move, a deletion,
    disabling one) would make it the first. A first step that had no subject already (saved before the
    rule) does not hold up other changes."""
    before = list(before)
    first = first_step(after)
    if first is None or _has_subject(first):
        return
    saved = next((step for step in before if first.pk is not None and step.pk == first.pk), None)
    if saved is None or saved.position != first.position or not saved.is_enabled or _has_subject(saved):
        raise ValidationError({"subject_template": ValidationError(FIRST_STEP_NEEDS_SUBJECT,
                                                                   code="first_step_subject")})
    if _has_subject(first_step(before)):
        raise FirstStepWithoutSubject(
            f"Step {first.position} would become the campaign's first email, and it has no subject; give it "
            f"one first (follow-ups reuse the first email's subject).")


def sequence_step_check(step: SequenceStep) -> None:
    """``step``, created or changed but not saved, against the first-step rule, beside the campaign's
    other steps as saved (``sequence_check_first_step`` says what it raises)."""
    before = list(SequenceStep.objects.filter(campaign_id=step.campaign_id))
    sequence_check_first_step(before=before, after=[saved for saved in before if saved.pk != step.pk] + [step])


def _lock_steps(campaign_id: int) -> None:
    # The campaign row orders concurrent changes of its steps, so two of them cannot each pass the
    # first-step check on what the other is changing, nor renumber the same steps at once (no-op on
    # SQLite, which writes one at a time).
    list(Campaign.objects.select_for_update().filter(pk=campaign_id).values_list("pk", flat=True))


@transaction.atomic
def sequence_step_save(*, step: SequenceStep, fields: dict[str, Any]) -> SequenceStep:
    """Create or change a step (``is_enabled`` among ``fields`` disables or enables it). Raises Django's
    ``ValidationError`` for values the model refuses (a position taken in the campaign) and for a step
    that would be the campaign's first without a subject, and ``FirstStepWithoutSubject`` when moving or
    disabling it would make another step without one the first."""
    _lock_steps(step.campaign_id)
    was_enabled = step.pk is not None and SequenceStep.objects.filter(pk=step.pk, is_enabled=True).exists()
    for name, value in fields.items():
        setattr(step, name, value)
    step.full_clean()
    sequence_step_check(step)
    step.save()
    if was_enabled and not step.is_enabled:
        sequence_step_cancel_queued(step)
    return step


def sequence_step_cancel_queued(step: SequenceStep) -> int:
    """A step just disabled: its emails waiting to go out (not those a sender holds) are cancelled, and
    their leads are due again at once, so the planner gives them the next enabled step instead."""
    now = timezone.now()
    queued = OutboundEmail.objects.filter(step=step, status__in=[OutboundEmail.Status.PENDING,
                                                                 OutboundEmail.Status.RETRY])
    lead_ids = list(queued.values_list("lead_id", flat=True))
    cancelled = queued.update(status=OutboundEmail.Status.CANCELLED, next_attempt_at=None, updated_at=now,
                              last_error=f"Step {step.position} was disabled before this email went out.")
    Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.IN_SEQUENCE).update(next_send_at=now, updated_at=now)
    return cancelled


def _email_counts(steps: Iterable[SequenceStep]) -> dict[int, int]:
    """Per step that has any, how many emails were sent or queued from it: one grouped query."""
    return dict(OutboundEmail.objects.filter(step_id__in=[step.pk for step in steps]).order_by()
                .values("step_id").annotate(n=Count("pk")).values_list("step_id", "n"))


def sequence_steps_in_use(steps: Sequence[SequenceStep]) -> list[str]:
    """For each of ``steps`` that has emails, the sentence refusing its deletion, by position (one query)."""
    counts = _email_counts(steps)
    return [step_in_use_text(step.position, counts[step.pk])
            for step in sorted(steps, key=lambda step: (step.campaign_id, step.position)) if step.pk in counts]


def sequence_steps_delete_problems(steps: Sequence[SequenceStep]) -> list[str]:
    """Why ``steps`` (of one campaign or several) cannot be deleted together, one sentence each: a step that
    has emails, a campaign whose first step would be left without a subject. Empty when they can be.
    With several campaigns, each sentence starts with the campaign's name. Two queries and one per campaign."""
    counts = _email_counts(steps)
    by_campaign: defaultdict[int, list[SequenceStep]] = defaultdict(list)
    for step in steps:
        by_campaign[step.campaign_id].append(step)
    names = dict(Campaign.objects.filter(pk__in=list(by_campaign)).values_list("pk", "name"))
    problems = []
    for campaign_id, chosen in sorted(by_campaign.items()):
        prefix = f"{names.get(campaign_id, '')}: " if len(by_campaign) > 1 else ""
        problems += [prefix + step_in_use_text(step.position, counts[step.pk])
                     for step in sorted(chosen, key=lambda step: step.position) if step.pk in counts]
        gone = {step.pk for step in chosen}
        before = list(SequenceStep.objects.filter(campaign_id=campaign_id))
        try:
            sequence_check_first_step(before=before, after=[step for step in before if step.pk not in gone])
        except (FirstStepWithoutSubject, ValidationError) as exc:
            problems.append(prefix + (str(exc) if isinstance(exc, FirstStepWithoutSubject)
                                      else FIRST_STEP_NEEDS_SUBJECT))
    return problems


@transaction.atomic
def sequence_step_delete(*, step: SequenceStep) -> None:
    """Delete a step no email refers to, move every later step of its campaign up one place and the leads'
    ``current_step`` with them. Raises ``StepInUse`` when the step has emails (it is kept: disable it
    instead), and ``FirstStepWithoutSubject`` when it is the first and the next enabled one has no subject.
    A step already deleted is left at that."""
    _lock_steps(step.campaign_id)
    # Read under the lock: an earlier deletion in the same request may have moved this step already.
    steps = list(SequenceStep.objects.filter(campaign_id=step.campaign_id))
    saved = next((candidate for candidate in steps if candidate.pk == step.pk), None)
    if saved is None:
        return
    used = OutboundEmail.objects.filter(step_id=saved.pk).count()
    if used:
        raise StepInUse(step_in_use_text(saved.position, used))
    sequence_check_first_step(before=steps, after=[candidate for candidate in steps if candidate.pk != saved.pk])
    saved.delete()
    now = timezone.now()
    # One step at a time, lowest first: each moves into the place just freed, so (campaign, position) stays
    # unique after every row, as SQLite and PostgreSQL both check it row by row within a statement.
    for later in sorted((candidate for candidate in steps if candidate.position > saved.position),
                        key=lambda candidate: candidate.position):
        SequenceStep.objects.filter(pk=later.pk).update(position=later.position - 1, updated_at=now)
    # A lead's current_step is the position of the step it had: it moves with that step, so the step after
    # it stays the same one.
    Lead.objects.filter(campaign_id=step.campaign_id, current_step__gte=saved.position).update(
        current_step=F("current_step") - 1, updated_at=now)


@transaction.atomic
def sequence_steps_delete(*, steps: Iterable[SequenceStep]) -> None:
    """Delete several steps (``sequence_step_delete`` each), highest position first: a later step's
    deletion never changes which step is first, so each check sees what the whole deletion leaves."""
    for step in sorted(steps, key=lambda step: (step.campaign_id, -step.position)):
        sequence_step_delete(step=step)
