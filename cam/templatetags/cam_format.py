"""Template filters for CAM's admin pages."""

from django import template

from cam.models.decisions import percent_text

register = template.Library()


@register.filter
def percent(value) -> str:
    """A rate for people: 12.5 → "12.5 %", None (nothing sent yet) → "—"."""
    return "—" if value is None else f"{percent_text(value)} %"
