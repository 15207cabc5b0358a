"""Template filters for CAM's admin pages."""

from django import template

from cam.jobs.summary import counts_text, duration_text, errors_text
from cam.models.decisions import percent_text

register = template.Library()


@register.filter
def percent(value) -> str:
    """A rate for people: 12.5 → "12.5 %", None (nothing sent yet) → "—"."""
    return "—" if value is None else f"{percent_text(value)} %"


@register.filter
def duration(seconds) -> str:
    """Seconds for people: "450 ms", "3.2 s", "2 min 5 s"; None → "—"."""
    return duration_text(seconds)


@register.filter
def job_counts(counts) -> str:
    """A job run's counts in words (``cam.jobs.summary.counts_text``), "—" when there are none."""
    return counts_text(counts) or "—"


@register.filter
def job_errors(run) -> str:
    """A job run's errors (a dashboard run: its ``counts`` and ``error``) as short sentences naming the step."""
    return errors_text(run.get("counts"), run.get("error") or "")
