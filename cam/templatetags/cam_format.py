"""Template filters for CAM's admin pages."""

from django import template
from django.utils import timezone

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


@register.filter
def relative(moment) -> str:
    """A time as people say it from now: "12 s ago", "4 min ago", "in 2 h 5 min", "3 days ago"; None → "—"."""
    if moment is None:
        return "—"
    seconds = (moment - timezone.now()).total_seconds()
    ahead, seconds = seconds > 0, abs(seconds)
    if seconds < 1:
        return "just now"
    if seconds >= 2 * 86400:
        words = f"{round(seconds / 86400)} days"
    else:
        words = duration_text(seconds if seconds >= 60 else round(seconds))
    return f"in {words}" if ahead else f"{words} ago"


@register.filter
def job_name(job: str) -> str:
    """A job's name as staff read it: "worker_cycle" → "Worker cycle"."""
    return job.replace("_", " ").capitalize() if job else "—"


@register.filter
def number(value) -> str:
    """A whole number with thousands separated: 12345 → "12,345" (floatformat's Decimal arithmetic is
    slow enough to show on a page with hundreds of counts); None → "—"."""
    if value is None:
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
