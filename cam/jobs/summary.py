"""What a job run did, in words: its counts, its errors and its duration as staff read them.

A run's ``counts`` is whatever its job returned (``cam.jobs.definitions``): flat numbers for most jobs,
and for the worker's cycle one set of counts per step with the failing steps' errors. ``counts_text``
turns any of them into one line ("1,204 read: 1,150 created, 12 updated · 2 alerts sent"), leaving out
what is zero or empty; a key it has no words for still reads as "key: value", never as a dict.
The admin's pages show this text wherever a run's counts are shown, so the words live in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Words for the keys the jobs return. A key comes out as "{n:,} {words}", in this order: PostgreSQL keeps a
# JSON object's keys in an order of its own, so the order a job gave them is not there to follow.
COUNT_WORDS: dict[str, str] = {
    # harvest, the lead intake
    "read": "read",
    "created": "created",
    "updated": "updated",
    "unchanged": "unchanged",
    "duplicate": "duplicate",
    "suppressed": "suppressed",
    "rejected": "rejected",
    "sources": "sources",
    "sources_failed": "sources failed",
    # score, qualify
    "scored": "scored",
    "changed": "changed",
    "enrolled": "enrolled",
    "qualified_not_enrolled": "qualified, not enrolled",
    "disqualified": "disqualified",
    # outreach: recovery, planning, sending
    "recovered_requeued": "interrupted sends requeued",
    "recovered_retry": "interrupted sends to retry",
    "recovered_unknown": "interrupted sends of unknown outcome",
    "due": "due",
    "planned": "planned",
    "queued": "batches queued",
    # (polling here, so that "3 fetched, 3 stored, 1 failed" and "27 sent, 1 failed" both read in order)
    "fetched": "fetched",
    "stored": "stored",
    "skipped_duplicates": "already stored",
    "sent": "sent",
    "failed": "failed",
    "retry": "to retry",
    "unknown": "of unknown outcome",
    "cancelled": "cancelled",
    "handed_back": "handed back",
    "waiting_gap": "waiting for the mailbox gap",
    "busy": "busy elsewhere",
    "outside_window": "outside the send window",
    "mailbox_cap": "at the mailbox cap",
    "mailbox_gap": "waiting for the mailbox gap",
    "campaign_cap": "at the campaign cap",
    "campaign_paused": "in a paused campaign",
    "no_mailbox": "without a mailbox",
    "no_step": "without a next step",
    "template_error": "whose template does not render",
    "send_failed": "refused by the provider",
    "send_unknown": "of unknown outcome",
    # inbox: replies, follow-ups
    "processed": "read",
    "errors": "could not be read",
    "held": "held for review",
    "positive": "positive",
    "negative": "negative",
    "neutral": "neutral",
    "unsubscribe": "unsubscribe",
    "bounce": "bounce",
    "auto_reply": "auto-reply",
    "out_of_office": "out of office",
    "unmatched": "unmatched",
    "resumed": "resumed",
    "nurture": "moved to nurture",
    "dead": "marked dead",
    # alerts
    "failed_transient": "failed (will retry)",
    "failed_permanent": "failed for good",
    "channels_disabled": "channels disabled",
    "given_up": "given up",
    # metrics, rules, watchdog
    "evaluated": "rules evaluated",
    "below_sample": "below sample size",
    "fired": "fired",
    "paused": "campaigns paused",
    "degraded": "campaigns degraded",
    "cleared": "degraded campaigns active again",
    "runs_failed": "dead runs failed",
    "workers_lost": "workers marked lost",
    "leases_released": "leases released",
    "stale": "stale workers",
    "alerts_queued": "alerts queued",
    "campaigns": "campaigns",
    "mailboxes": "mailboxes",
}

# The count a job's line leads with, followed by a colon: "1,204 read: 1,150 created, …".
LEAD_COUNTS = ("read", "scored", "processed")
# How many things a run went over: said last, as context ("… · 2 campaigns"), in the singular for one.
SCOPE_COUNTS = {"campaigns": "campaign", "mailboxes": "mailbox", "sources": "source"}

# The steps of the worker's cycle (``cam.jobs.cycle.STEPS``), and the prefixes the inbox job gives its parts.
STEP_WORDS: dict[str, str] = {
    "send": "send",
    "poll": "poll",
    "replies": "replies",
    "no_reply": "no-reply timeouts",
    "metrics": "metrics",
    "rules": "rules",
    "alerts": "alerts",
    "lease": "lease",
    "cycle": "cycle",
}
PREFIXED_PARTS = ("poll", "replies", "alerts")
RANK = {key: rank for rank, key in enumerate(COUNT_WORDS)}
STEP_RANK = {name: rank for rank, name in enumerate(STEP_WORDS)}


def words(key: str) -> str:
    """A key for people: "sources_failed" → "sources failed"."""
    return COUNT_WORDS.get(key, key.replace("_", " "))


def _counted(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,} {SCOPE_COUNTS[key] if value == 1 and key in SCOPE_COUNTS else words(key)}"
    return f"{words(key)}: {value_text(value)}"


def value_text(value: Any) -> str:
    """Any JSON value in words: numbers with thousands separators, lists joined, mappings as "key: value"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return ", ".join(f"{words(str(key))}: {value_text(inner)}" for key, inner in sorted(value.items())
                         if not _empty(inner)) or "—"
    if isinstance(value, list | tuple):
        return "; ".join(value_text(item) for item in value if not _empty(item)) or "—"
    return "—" if value is None else str(value)


def _empty(value: Any) -> bool:
    return value is None or value == 0 or value == "" or value == [] or value == {} or value is False


def _counts_line(counts: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in counts.items() if not _empty(value)}
    lead = next((key for key in LEAD_COUNTS if isinstance(shown.get(key), int)), None)
    order = sorted((key for key in shown if key != lead and key not in SCOPE_COUNTS),
                   key=lambda key: (key not in RANK, RANK.get(key, 0), key))
    order += [key for key in SCOPE_COUNTS if key in shown]
    parts = [_counted(key, shown[key]) if key in COUNT_WORDS else f"{words(key)}: {value_text(shown[key])}"
             for key in order]
    if lead is None:
        return ", ".join(parts)
    head = f"{value_text(shown[lead])} {words(lead)}"
    return f"{head}: {', '.join(parts)}" if parts else head


def _split_prefixed(counts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The inbox job's "poll_fetched", "replies_processed", … grouped as steps; the rest stays as it is."""
    groups: dict[str, dict[str, Any]] = {"": {}}
    for key, value in counts.items():
        prefix, _, rest = key.partition("_")
        if prefix in PREFIXED_PARTS and rest:
            groups.setdefault(prefix, {})[rest] = value
        else:
            groups[""][key] = value
    return groups


def _step_order(name: str) -> tuple[bool, int, str]:
    """The cycle's steps in the order they run, any other after them by name."""
    return name not in STEP_RANK, STEP_RANK.get(name, 0), name


def _steps_line(steps: Mapping[str, Any]) -> str:
    parts = []
    for name in sorted(steps, key=_step_order):
        counts = steps[name]
        line = _counts_line(counts) if isinstance(counts, Mapping) else value_text(counts)
        if line and line != "—":
            parts.append(f"{STEP_WORDS.get(name, words(name))}: {line}")
    return " · ".join(parts)


def counts_text(counts: Mapping[str, Any] | None) -> str:
    """One line of what a run did; "" when it did nothing worth saying.

    The worker cycle's ``{"steps": …, "errors": …, "ended_early": …}`` reads step by step; its errors are
    left to ``errors_text`` (shown beside the counts), its ``ended_early`` becomes "ended early: why".
    """
    if not counts:
        return ""
    if isinstance(counts.get("steps"), Mapping):
        rest = {key: value for key, value in counts.items() if key not in ("steps", "errors", "ended_early")}
        parts = [_steps_line(counts["steps"]), _counts_line(rest)]
        if counts.get("ended_early"):
            parts.append(f"ended early: {value_text(counts['ended_early'])}")
        return " · ".join(part for part in parts if part)
    groups = _split_prefixed(counts)
    plain = groups.pop("")
    return " · ".join(part for part in [_counts_line(plain), _steps_line(groups)] if part)


def errors_lines(counts: Mapping[str, Any] | None, error: str = "") -> list[str]:
    """The run's errors as short sentences naming the step ("poll: mailbox Sales 2: login refused").

    The cycle keeps them per step in ``counts["errors"]``; other jobs have only ``error``. A cycle's
    ``error`` repeats its step errors, so it is used only when the counts name none."""
    found = (counts or {}).get("errors")
    if isinstance(found, Mapping) and found:
        return [f"{STEP_WORDS.get(str(step), words(str(step)))}: {value_text(found[step])}"
                for step in sorted(found, key=_step_order) if not _empty(found[step])]
    return [line.strip() for line in (error or "").splitlines() if line.strip()]


def errors_text(counts: Mapping[str, Any] | None, error: str = "") -> str:
    return "; ".join(errors_lines(counts, error))


def duration_text(seconds: float | None) -> str:
    """A duration for people: 0.45 → "450 ms", 3.2 → "3.2 s", 125 → "2 min 5 s", 7300 → "2 h 1 min"."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
