"""The intent phrases' literal pre-check (cam.inbox.literals) skips only phrases that cannot match: every
classification equals the one that searches for every phrase, on the corpus and on generated replies
(each phrase written out, split over lines, in capitals, with accents), and every text a phrase matches
holds one of the literals taken from it."""

from __future__ import annotations

import datetime
import json
import random
import re
from pathlib import Path
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]

import pytest

from cam.inbox import classify
from cam.inbox.classify import PHRASES, candidate_phrases, classify_message
from cam.inbox.literals import required_literals
from cam.inbox.text import fold
from tests.inbox.test_corpus_classes import reply

CORPUS = Path(__file__).parent / "corpus"
TODAY = datetime.date.fromisoformat(json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))["today"])
ACCENTED = str.maketrans({"e": "é", "a": "à", "u": "ü", "o": "ô", "c": "ç", "n": "ñ"})


def sample(nodes, rng: random.Random) -> str:
    """A text written from a parsed pattern, by chance: often, not always, one the pattern matches."""
    out: list[str] = []
    for op, argument in nodes:
        if op is _c.LITERAL:
            out.append(chr(argument))
        elif op is _c.NOT_LITERAL:
            out.append("x" if chr(argument) != "x" else "y")
        elif op is _c.ANY:
            out.append("q")
        elif op is _c.IN:
            out.append(_in_class(argument, rng))
        elif op is _c.SUBPATTERN:
            out.append(sample(argument[3], rng))
        elif op is _c.BRANCH:
            out.append(sample(rng.choice(argument[1]), rng))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, body = argument
            out.extend(sample(body, rng) for _ in range(rng.randint(low, min(high, low + 2))))
    return "".join(out)


def _in_class(items, rng: random.Random) -> str:
    if items and items[0][0] is _c.NEGATE:
        return "@" if not any(op is _c.LITERAL and value == ord("@") for op, value in items) else "#"
    op, value = rng.choice(items)
    if op is _c.LITERAL:
        return chr(value)
    if op is _c.RANGE:
        return chr(rng.randint(*value))
    return {_c.CATEGORY_DIGIT: "7", _c.CATEGORY_SPACE: " ", _c.CATEGORY_WORD: "w"}.get(value, "z")


def written_phrases(seed: int = 17, each: int = 6) -> list[str]:
    rng = random.Random(seed)
    texts: list[str] = []
    for phrase in PHRASES:
        parsed = _parser.parse(phrase.pattern.pattern)
        texts.extend(sample(parsed, rng) for _ in range(each))
    return texts


def every_phrase(text: str, category: str | None = None) -> set[int]:
    """No pre-check: every phrase (of ``category``) is searched for."""
    return {index for index, phrase in enumerate(PHRASES) if category is None or phrase.category == category}


def test_every_phrase_has_literals_to_check():
    assert all(required_literals(phrase.pattern) for phrase in PHRASES)


@pytest.mark.parametrize(("pattern", "literals"), [
    (r"\bremove (?:my|our) (?:e-?mail|address)\b", {"remove "}),
    (r"\b(?:loschen|streichen) sie mich\b", {" sie mich"}),
    (r"\bdesabonn\w*", {"desabonn"}),
    (r"\b(?:remov|apag)\w*[- ]me\b", {"remov", "apag"}),
    (r"\bopt(?:-| )?out\b", {"opt"}),
    (r"(?:ab|c?)d?", None),  # a branch that needs nothing promises nothing
    (r"(?i)unsubscribe", None),  # case-insensitive: the literal may be written otherwise
    (r"x?y*", None),
])
def test_it_takes_the_literals_every_match_needs(pattern, literals):
    found = required_literals(re.compile(pattern))
    assert (set(found) if found is not None else None) == literals


def test_every_text_a_phrase_matches_holds_one_of_its_literals():
    checked = 0
    for raw in written_phrases():
        for text in (raw, f"well, {raw}. thanks", fold(f"Hi,\n{raw.upper()}\nBest")):
            candidates = candidate_phrases(text)
            for index, phrase in enumerate(PHRASES):
                if phrase.pattern.search(text):
                    checked += 1
                    assert index in candidates, (phrase.pattern.pattern, text)
    assert checked > len(PHRASES) * 5  # most written phrases match their own pattern, and others besides


def tricky_replies() -> list[tuple[str, str]]:
    """Written phrases as people send them: over two lines, in capitals, with accents, and in the subject."""
    replies: list[tuple[str, str]] = []
    for number, raw in enumerate(written_phrases(seed=4, each=1)):
        words = raw.split(" ")
        middle = len(words) // 2
        variants = [
            " ".join(words[:middle]) + "\n" + " ".join(words[middle:]),
            raw.upper(),
            raw.translate(ACCENTED),
            f"Thanks for writing. We are not {raw} right now, but ask later?",
        ]
        replies.append((variants[number % len(variants)], "Re: A quick question"))
        if number % 5 == 0:
            replies.append(("Hello", f"Re: {raw.title()}"))
    return replies


def test_the_pre_check_changes_no_classification(monkeypatch):
    messages = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    messages += [reply(text, subject=subject) for text, subject in tricky_replies()]
    checked = [classify_message(raw, today=TODAY) for raw in messages]
    monkeypatch.setattr(classify, "candidate_phrases", every_phrase)
    searched = [classify_message(raw, today=TODAY) for raw in messages]
    assert checked == searched
    assert len({result.category for result in checked}) >= 6
