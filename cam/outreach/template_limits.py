"""Bounds on what a step's template may produce, loaded into the rendering engines over Django's own.

A template is written by staff but rendered with lead data from outside, thousands of times a day
in the worker. Django's padding filters take any width (``{{ first_name|center:20000000 }}``
renders 20 MB, and a width can come from a lead's field), ``stringformat`` and ``floatformat``
likewise, and ``{% lorem %}`` any count: each is replaced here by the same filter or tag refusing a
size above ``MAX_WIDTH``. ``{% for %}`` counts its iterations, nested loops included. The rendered
text as a whole is capped by ``MAX_RENDERED_CHARS`` in ``cam.outreach.rendering``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django import template
from django.template import defaultfilters, defaulttags
from django.template.base import Parser, Token
from django.template.context import Context

MAX_WIDTH = 1000  # wider than any line of an email; a count of lorem words or paragraphs too

register = template.Library()


class TooWide(ValueError):
    """A filter or tag was asked for more than ``MAX_WIDTH``."""


def _bounded(what: str, value: object) -> None:
    numbers = [int(n) for n in re.findall(r"\d+", str(value))]
    if any(n > MAX_WIDTH for n in numbers):
        raise TooWide(f"{what} asks for a size of {max(numbers)}; at most {MAX_WIDTH} is allowed")


def _padding(name: str) -> Callable[[Any, Any], str]:
    original: Callable[[Any, Any], str] = getattr(defaultfilters, name)

    def bounded(value: Any, arg: Any) -> str:
        _bounded(f"|{name}", arg)
        return original(value, arg)

    bounded.__name__ = name
    return bounded


for _name in ("center", "ljust", "rjust"):
    register.filter(_name, _padding(_name), is_safe=True)


@register.filter(is_safe=True)
def stringformat(value: Any, arg: str) -> str:
    _bounded("|stringformat", arg)
    return defaultfilters.stringformat(value, arg)


@register.filter(is_safe=True)
def floatformat(text: Any, arg: int | str = -1) -> str:
    _bounded("|floatformat", arg)
    return defaultfilters.floatformat(text, arg)


@register.tag
def lorem(parser: Parser, token: Token) -> defaulttags.LoremNode:
    node = defaulttags.lorem(parser, token)
    # A count given as a variable could come from a lead's data: only a number written in the template.
    count = node.count.var
    if isinstance(count, template.Variable):
        if count.lookups is not None:
            raise template.TemplateSyntaxError("{% lorem %} takes a number, not a variable, in a step's template.")
        count = count.literal
    try:
        _bounded("{% lorem %}", count)
    except TooWide as exc:
        raise template.TemplateSyntaxError(str(exc)) from None
    return node


MAX_LOOP_ITERATIONS = 10_000  # over all loops of one render, nested ones counted in full


class BoundedForNode(defaulttags.ForNode):
    """``{% for %}`` that counts every iteration of one render: nested loops over short strings would
    otherwise multiply into billions of steps before any size check sees the output."""

    def render(self, context: Context) -> str:
        # The stubs allow a str; do_for always gives a FilterExpression.
        values = self.sequence.resolve(context, ignore_failures=True)  # type: ignore[union-attr]
        # One count per render, shared by every loop node of the template. (The stubs lose the default's type.)
        total: int = context.render_context.get("cam_loop_iterations", 0)  # type: ignore[assignment]
        total += len(values) if hasattr(values, "__len__") else 0
        if total > MAX_LOOP_ITERATIONS:
            raise TooWide(f"the loops of this template run more than {MAX_LOOP_ITERATIONS:,} times")
        context.render_context["cam_loop_iterations"] = total
        return super().render(context)


@register.tag("for")
def do_for(parser: Parser, token: Token) -> defaulttags.ForNode:
    node = defaulttags.do_for(parser, token)
    node.__class__ = BoundedForNode
    return node
