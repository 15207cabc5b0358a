"""Rendering a sequence step for one lead: subject, plain text and HTML, from Django templates.

Templates see the lead's fields (``first_name``, ``company``, …), ``full_name``, ``sender_name``,
``campaign`` and ``unsubscribe_url``; a missing value renders empty, so ``|default:"there"`` gives a
fallback. Plain text is rendered without HTML escaping; HTML with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.utils.html import escape

from cam.models import Campaign, Lead, Mailbox, SequenceStep

# Django's filters and tags, with the sizes they may produce bounded (see template_limits).
_LIMITS = ["cam.outreach.template_limits"]
TEXT_ENGINE = Engine(autoescape=False, builtins=_LIMITS)
HTML_ENGINE = Engine(autoescape=True, builtins=_LIMITS)
# The most one rendered part may hold; a cold email is a few kilobytes.
MAX_RENDERED_CHARS = 100_000

LEAD_VARIABLES = ("email", "first_name", "last_name", "company", "title", "industry", "country", "company_size",
                  "website", "timezone")


class TemplateProblem(ValueError):
    """A step's template cannot be compiled or rendered; the message says where and why, for staff."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


def template_context(*, lead: Lead, campaign: Campaign, mailbox: Mailbox | None,
                     unsubscribe_url: str) -> dict[str, Any]:
    context: dict[str, Any] = {name: getattr(lead, name) for name in LEAD_VARIABLES}
    context.update(full_name=lead.full_name, campaign=campaign.name, unsubscribe_url=unsubscribe_url,
                   sender_name=(mailbox.from_name if mailbox else ""),
                   sender_email=(mailbox.from_email if mailbox else ""))
    return context


@functools.lru_cache(maxsize=512)
def _compiled(engine: Engine, source: str) -> Template:
    """``source`` compiled once, however many leads a step is rendered for (compiling costs more than
    rendering); a template that does not compile raises each time, as it is never kept."""
    return engine.from_string(source)


def _render(engine: Engine, source: str, context: dict[str, Any], what: str) -> str:
    try:
        # The Context must carry the engine's escaping: a Context escapes by default, whatever the
        # engine says, and plain text would go out as "O&#x27;Brien" and "&amp;".
        rendered = _compiled(engine, source).render(Context(context, autoescape=engine.autoescape))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"The {what} template does not compile: {exc}") from None
    except Exception as exc:  # a filter that fails on a value, a bad tag argument …
        raise TemplateProblem(f"The {what} template does not render: {type(exc).__name__}: {exc}") from None
    if len(rendered) > MAX_RENDERED_CHARS:
        raise TemplateProblem(f"The {what} template renders {len(rendered):,} characters; at most "
                              f"{MAX_RENDERED_CHARS:,} are allowed.")
    return rendered


def footer_text(unsubscribe_url: str) -> str:
    lines = ["", "--"]
    if settings.AICMO_CAM_POSTAL_ADDRESS:
        lines.append(settings.AICMO_CAM_POSTAL_ADDRESS)
    lines.append(f"Not interested? Unsubscribe: {unsubscribe_url}")
    return "\n".join(lines) + "\n"


def footer_html(unsubscribe_url: str) -> str:
    address = escape(settings.AICMO_CAM_POSTAL_ADDRESS)
    parts = [f"<p style=\"color:#666;font-size:12px\">{address}<br>" if address else
             "<p style=\"color:#666;font-size:12px\">",
             f"Not interested? <a href=\"{escape(unsubscribe_url)}\">Unsubscribe</a></p>"]
    return "".join(parts)


def render_step(*, step: SequenceStep, context: dict[str, Any], first_subject: str = "") -> RenderedEmail:
    """The step rendered for one lead, with the compliance footer. Raises ``TemplateProblem``.

    A follow-up (a step after the campaign's first) goes out in the first email's thread: given the
    subject the lead's first email went out with as ``first_subject``, its subject is ``Re: <first
    subject>`` whatever its own subject template says. The first step is rendered without one.
    """
    if first_subject:
        subject = first_subject if first_subject.lower().startswith("re:") else f"Re: {first_subject}"
    else:
        subject = _render(TEXT_ENGINE, step.subject_template, context, "subject")
    subject = " ".join(subject.split())  # headers are one line
    body = _render(TEXT_ENGINE, step.body_template, context, "body").rstrip() + "\n"
    html = _render(HTML_ENGINE, step.html_template, context, "HTML") if step.html_template.strip() else ""
    url = context.get("unsubscribe_url", "")
    return RenderedEmail(subject=subject, body_text=body + footer_text(url),
                         body_html=(html + footer_html(url)) if html else "")


SAMPLE_LEAD = Lead(email="anna.schmidt@brightlane.example.com", first_name="Anna", last_name="Schmidt",
                   company="Brightlane Software", title="CTO", industry="software", country="DE",
                   company_size=120, website="https://brightlane.example.com", timezone="Europe/Berlin")


def check_templates(*, subject: str, body: str, html: str) -> list[tuple[str, str]]:
    """Render each template for a sample lead; returns ``(field, message)`` for each that fails."""
    context = template_context(lead=SAMPLE_LEAD, campaign=Campaign(name="Sample campaign"), mailbox=None,
                               unsubscribe_url="https://cam.example.com/u/sample/")
    problems = []
    for field, engine, source, what in (("subject_template", TEXT_ENGINE, subject, "subject"),
                                        ("body_template", TEXT_ENGINE, body, "body"),
                                        ("html_template", HTML_ENGINE, html, "HTML")):
        try:
            _render(engine, source or "", context, what)
        except TemplateProblem as exc:
            problems.append((field, str(exc)))
    return problems


def render_snippet(body: str, context: dict[str, Any]) -> str:
    """A saved answer's text for one lead, with the variables of a step (no footer: the answer gets
    its own when it is sent). Raises ``TemplateProblem``."""
    return _render(TEXT_ENGINE, body, context, "saved answer").strip()


def check_snippet(body: str) -> str:
    """"" when a saved answer's text renders for a sample lead; else why not."""
    context = template_context(lead=SAMPLE_LEAD, campaign=Campaign(name="Sample campaign"), mailbox=None,
                               unsubscribe_url="https://cam.example.com/u/sample/")
    try:
        render_snippet(body, context)
    except TemplateProblem as exc:
        return str(exc)
    return ""
