"""The literal text a regular expression cannot match without, so a cheap substring test can skip it.

``required_literals(pattern)`` reads the parsed pattern once and returns strings of which at least one
occurs in every text the pattern finds something in (``None`` when there is no such guarantee). Checking
``any(literal in text for literal in literals)`` before the search is then sound: a text that fails it
cannot match. The classifier's intent phrases use it (``cam.inbox.classify``): most replies hold the
literal words of few of its three hundred phrases, and a substring test costs far less than a search.

Only what every match must contain is taken: a run of consecutive literal characters, a group's or an
alternation's literals when every branch has some, a repeat's when it must occur at least once. Anything
else (classes, optional parts, references, case-insensitive patterns) ends a run and promises nothing.
"""

from __future__ import annotations

import re
from re import _constants as _c  # type: ignore[attr-defined]  # the parser's opcodes: no public name
from re import _parser  # type: ignore[attr-defined]  # the only parser of Python's own syntax
from typing import Any

Literals = frozenset[str]


def required_literals(pattern: re.Pattern[str]) -> Literals | None:
    """Strings at least one of which every match of ``pattern`` contains, or ``None``."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    return _sequence(_parser.parse(pattern.pattern, pattern.flags))


def _better(best: Literals | None, other: Literals | None) -> Literals | None:
    """The more selective of two sets: longer shortest string first, then fewer strings."""
    if other is None or not other or any(not literal for literal in other):
        return best
    if best is None:
        return other
    return min(best, other, key=lambda literals: (-min(map(len, literals)), len(literals)))


def _sequence(nodes: Any) -> Literals | None:
    best: Literals | None = None
    run: list[str] = []
    for op, argument in nodes:
        if op is _c.LITERAL:
            run.append(chr(argument))
            continue
        if op is _c.AT:  # zero width: the characters either side are still next to each other
            continue
        best = _better(best, frozenset({"".join(run)}) if run else None)
        run = []
        best = _better(best, _node(op, argument))
    return _better(best, frozenset({"".join(run)}) if run else None)


def _node(op: Any, argument: Any) -> Literals | None:
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = argument
        return None if add_flags or del_flags else _sequence(body)
    if op is _c.BRANCH:
        union: set[str] = set()
        for branch in argument[1]:
            literals = _sequence(branch)
            if not literals:
                return None  # a branch with nothing required can match without any of the others' words
            union |= literals
        return frozenset(union)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)):
        low, _high, body = argument
        return _sequence(body) if low >= 1 else None
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _sequence(argument)
    return None
