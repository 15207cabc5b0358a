"""Scoring a lead against its campaign's ideal-customer profile.

``score_lead`` is pure: it reads a lead and a campaign and returns a 0–100 score with a breakdown
per criterion, so staff can see why a lead scored what it did. A criterion the profile leaves empty
is not counted; points earned are scaled to the weights of the criteria that are configured, then
the free-mail and role-account penalties are taken off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from cam.models import Campaign, Lead

# Leads per batch: one statement each on PostgreSQL, two on SQLite. Big enough that the statements' own cost vanishes,
# small enough that a batch's row locks are short and its distinct values few.
BATCH_SIZE = 20_000
# Answers kept per text criterion from batch to batch: values repeat across a list's batches, but a list of all
# distinct values must not grow without bound.
ANSWERS_KEPT = 100_000


@dataclass(frozen=True)
class Score:
    value: int
    breakdown: dict[str, Any]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _industry(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    industry = _norm(lead.industry)
    for wanted in campaign.icp_industries:
        if industry and (_norm(wanted) in industry or industry in _norm(wanted)):
            return True, f"industry {lead.industry!r} matches {wanted!r}"
    return False, f"industry {lead.industry!r} is not in the profile" if industry else "industry unknown"


def _title(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    title = _norm(lead.title)
    for keyword in campaign.icp_title_keywords:
        if title and re.search(rf"(?<!\w){re.escape(_norm(keyword))}(?!\w)", title):
            return True, f"title {lead.title!r} contains {keyword!r}"
    return False, f"title {lead.title!r} has no profile keyword" if title else "title unknown"


def _country(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    country = _norm(lead.country)
    if country and country in {_norm(c) for c in campaign.icp_countries}:
        return True, f"country {lead.country!r} is in the profile"
    return False, f"country {lead.country!r} is not in the profile" if country else "country unknown"


def _company_size(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    low, high = campaign.icp_company_size_min, campaign.icp_company_size_max
    if lead.company_size is None:
        return False, "company size unknown"
    fits = (low is None or lead.company_size >= low) and (high is None or lead.company_size <= high)
    bounds = f"{low if low is not None else 0}–{high if high is not None else '∞'}"
    return fits, f"company size {lead.company_size} {'is' if fits else 'is not'} within {bounds}"


CRITERIA: list[tuple[str, str, Callable[[Campaign], bool], Callable[[Lead, Campaign], tuple[bool, str]]]] = [
    # (name, weight field, "is this criterion configured?", matcher)
    ("industry", "weight_industry", lambda c: bool(c.icp_industries), _industry),
    ("title", "weight_title", lambda c: bool(c.icp_title_keywords), _title),
    ("country", "weight_country", lambda c: bool(c.icp_countries), _country),
    ("company_size", "weight_company_size",
     lambda c: c.icp_company_size_min is not None or c.icp_company_size_max is not None, _company_size),
]


def score_lead(lead: Lead, campaign: Campaign) -> Score:
    breakdown: dict[str, Any] = {}
    earned = possible = 0
    for name, weight_field, configured, matcher in CRITERIA:
        weight = getattr(campaign, weight_field)
        if not configured(campaign) or weight == 0:
            continue
        matched, detail = matcher(lead, campaign)
        possible += weight
        earned += weight if matched else 0
        breakdown[name] = {"matched": matched, "points": weight if matched else 0, "weight": weight,
                           "detail": detail}
    base = round(100 * earned / possible) if possible else 100
    penalties = 0
    if lead.is_free_mail and campaign.penalty_free_mail:
        penalties += campaign.penalty_free_mail
        breakdown["free_mail"] = {"points": -campaign.penalty_free_mail, "detail": "free-mail address"}
    if lead.is_role_account and campaign.penalty_role_account:
        penalties += campaign.penalty_role_account
        breakdown["role_account"] = {"points": -campaign.penalty_role_account, "detail": "role account"}
    value = max(0, min(100, base - penalties))
    breakdown["total"] = {"base": base, "penalties": penalties, "score": value}
    return Score(value=value, breakdown=breakdown)


# Leads past these statuses have been contacted or decided on; re-scoring them would change nothing.
SCORABLE_STATUSES = (Lead.Status.NEW, Lead.Status.QUALIFIED, Lead.Status.DISQUALIFIED)

# The criteria decided on one text field each: scored in Python once per distinct value, in SQL for each lead.
TEXT_CRITERIA = {"industry": "industry", "title": "title", "country": "country"}


def leads_score(*, campaign: Campaign, only_unscored: bool = False, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Score the campaign's leads that have not been contacted yet, in batches; returns the counts.

    The score is ``score_lead``'s, to the character, but the database does the per-lead work: each text criterion
    (industry, title, country) is decided in Python once per *distinct value*, with the same functions
    ``score_lead`` uses, and one UPDATE looks those answers up for each lead, computes the company-size check, the
    score and the breakdown, and writes only the leads whose score or breakdown changed. Each batch costs one
    statement on PostgreSQL, whatever its size: the UPDATE, which also reads the next batch's last id and distinct
    text values (two on SQLite: those, then the UPDATE), plus one to read the first batch's.
    """
    plan = _Plan(campaign)
    connection = connections[router.db_for_write(Lead)]
    # On PostgreSQL a batch's UPDATE also reads the next batch's values (SQLite has no UPDATE inside WITH): one
    # statement per batch, not two.
    fold = connection.vendor == "postgresql"
    counts = {"scored": 0, "changed": 0}
    now = timezone.now()
    last_pk = 0
    sql, params = plan.batch(connection, after=last_pk, size=batch_size, only_unscored=only_unscored)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        size, last, *values = cursor.fetchone()
    while size:
        if connection.vendor != "postgresql":
            values = [json.loads(texts) for texts in values]
        sql, params = plan.update(connection, values, first=last_pk, last=last, now=now, only_unscored=only_unscored)
        more = size == batch_size
        if more:
            sql_next, params_next = plan.batch(connection, after=last, size=batch_size, only_unscored=only_unscored)
        if more and fold:
            # The next batch is read in the statement's snapshot, before this batch's writes: past its last id,
            # nothing it reads is written here.
            sql = (f"WITH written AS ({sql} RETURNING 1) "
                   f"SELECT (SELECT count(*) FROM written), next.* FROM ({sql_next}) AS next")
            params = [*params, *params_next]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if more and fold:
                changed, *following = cursor.fetchone()
            else:
                changed = cursor.rowcount
                if more:
                    cursor.execute(sql_next, params_next)
                    following = list(cursor.fetchone())
        counts["changed"] += changed
        counts["scored"] += size
        last_pk = last
        if not more:
            return counts
        size, last, *values = following
    return counts


class _Plan:
    """One campaign's profile turned into SQL: what ``score_lead`` computes, per lead, in one UPDATE.

    Python decides each text criterion once per distinct value (``score_lead``'s own functions), remembered from
    batch to batch, and writes that criterion's part of the breakdown as JSON text; the database looks those
    answers up by the lead's value, checks the company size, looks up the base for the lead's combination of
    matches, takes off the penalties, and puts the breakdown together as text, parsed once. Building it from text
    is what keeps the database's work per lead near that of rewriting the row.
    """

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        # (name, weight, text field or None for company size), in score_lead's order.
        self.criteria = [(name, getattr(campaign, weight_field), TEXT_CRITERIA.get(name))
                         for name, weight_field, configured, _ in CRITERIA
                         if configured(campaign) and getattr(campaign, weight_field) != 0]
        self.text_fields = [field for _, _, field in self.criteria if field]
        self.matchers = {name: matcher for name, _, _, matcher in CRITERIA}
        # Each text criterion's answers so far, by value: (matched, breakdown entry).
        self.answers: dict[str, dict[str, tuple[bool, str]]] = {field: {} for field in self.text_fields}
        possible = sum(weight for _, weight, _ in self.criteria)
        # score_lead's base for each combination of matched criteria (bit i: criterion i matched), its rounding too.
        self.bases = {mask: round(100 * sum(weight for i, (_, weight, _) in enumerate(self.criteria) if mask >> i & 1)
                                  / possible) if possible else 100
                      for mask in range(1 << len(self.criteria))}

    def _where(self, only_unscored: bool) -> tuple[str, list[Any]]:
        """The leads ``leads_score`` scores, as a condition on ``l``."""
        where = ["l.campaign_id = %s", "l.current_step = 0",
                 f"l.status IN ({', '.join(['%s'] * len(SCORABLE_STATUSES))})"]
        if only_unscored:
            where.append("l.score IS NULL")
        return " AND ".join(where), [self.campaign.pk, *SCORABLE_STATUSES]

    def batch(self, connection: BaseDatabaseWrapper, *, after: int, size: int,
              only_unscored: bool) -> tuple[str, list[Any]]:
        """The next batch's size, last id and each text field's distinct values (an array, JSON text on SQLite):
        only the values travel, not the leads."""
        table = connection.ops.quote_name(Lead._meta.db_table)
        where, params = self._where(only_unscored)
        # Distinct byte for byte, as the lookups by value compare them; sorting bytes is also the cheapest.
        distinct = ('array_agg(DISTINCT {} COLLATE "C")' if connection.vendor == "postgresql"
                    else "json_group_array(DISTINCT {})")
        columns = "".join(f", {distinct.format(field)}" for field in self.text_fields)
        fields = "".join(f", l.{field}" for field in self.text_fields)
        sql = (f"SELECT count(*), max(id){columns} FROM (SELECT l.id{fields} FROM {table} AS l "
               f"WHERE l.id > %s AND {where} ORDER BY l.id LIMIT %s) AS batch")
        return sql, [after, *params, size]

    @staticmethod
    def _part(name: str, weight: int, matched: bool, detail: str) -> str:
        """A criterion's entry of the breakdown as JSON text, followed by the comma before the next; without
        spaces, which the database would only skip when it parses the breakdown."""
        entry = {"matched": matched, "points": weight if matched else 0, "weight": weight, "detail": detail}
        return f"{json.dumps(name)}:{json.dumps(entry, separators=_COMPACT)},"

    def _answers(self, name: str, weight: int, field: str, values: list[str]) -> list[tuple[str, bool, str]]:
        """Each value's (value, matched, breakdown entry) for one text criterion; a value seen in an earlier batch
        is not decided again."""
        matcher = self.matchers[name]
        known = self.answers[field]
        if len(known) > ANSWERS_KEPT:
            known.clear()
        probe = Lead()
        answers = []
        for value in values:
            if value not in known:
                setattr(probe, field, value)
                matched, detail = matcher(probe, self.campaign)
                known[value] = (matched, self._part(name, weight, matched, detail))
            answers.append((value, *known[value]))
        return answers

    def _size(self, name: str, weight: int) -> tuple[str, str, list[str]]:
        """The company-size check in SQL: its condition, its breakdown entry as a text expression, and that
        expression's parameters."""
        low, high = self.campaign.icp_company_size_min, self.campaign.icp_company_size_max
        size = "l.company_size"
        fits = "(" + " AND ".join([f"{size} IS NOT NULL", *([f"{size} >= {int(low)}"] if low is not None else []),
                                   *([f"{size} <= {int(high)}"] if high is not None else [])]) + ")"
        bounds = f"{low if low is not None else 0}–{high if high is not None else '∞'}"
        # Each branch: the entry's JSON text up to where the lead's own size goes, and after it.
        unknown = self._part(name, weight, False, "company size unknown")
        within = self._part(name, weight, True, f"company size {_SIZE} is within {bounds}").split(_SIZE)
        outside = self._part(name, weight, False, f"company size {_SIZE} is not within {bounds}").split(_SIZE)
        text = f"CAST({size} AS TEXT)"
        entry = (f"CASE WHEN {size} IS NULL THEN %s WHEN {fits} THEN %s || {text} || %s "
                 f"ELSE %s || {text} || %s END")
        return fits, entry, [unknown, *within, *outside]

    def update(self, connection: BaseDatabaseWrapper, values: list[list[str]], *, first: int, last: int,
               now: Any, only_unscored: bool) -> tuple[str, list[Any]]:
        """The UPDATE scoring the leads with ids in (first, last], given each text field's distinct values there."""
        postgres = connection.vendor == "postgresql"
        table = connection.ops.quote_name(Lead._meta.db_table)
        # Placeholders in the order the statement has them: the flags', the entries', the answers' (SQLite's FROM).
        flag_params: list[Any] = []
        entry_params: list[Any] = []
        answer_params: list[Any] = []
        sources, joins, flags, entries = [], [], [], []
        for index, (name, weight, field) in enumerate(self.criteria):
            if field is None:
                fits, entry, params = self._size(name, weight)
                flags.append(fits)
                entries.append(entry)
                entry_params.extend(params)
                continue
            answers = self._answers(name, weight, field, values[self.text_fields.index(field)])
            if postgres:
                # Looked up in two JSON objects keyed by value: which values matched, and every value's entry. No
                # join, so no sort of the leads by text (nor its spill past work_mem), and they reach the UPDATE in
                # the table's own order.
                flags.append(f"%s::jsonb ? l.{field}")
                entries.append(f"%s::jsonb ->> l.{field}")
                flag_params.append(json.dumps({value: 1 for value, matched, _ in answers if matched}))
                entry_params.append(json.dumps({value: entry for value, _, entry in answers}))
                continue
            alias = f"m{index}"
            sources.append(f"(SELECT value ->> 0 AS value, value ->> 1 AS matched, value ->> 2 AS entry "
                           f"FROM json_each(%s)) AS {alias}")
            answer_params.append(json.dumps(answers))
            joins.append(f"l.{field} = {alias}.value")
            flags.append(f"{alias}.matched")
            entries.append(f"{alias}.entry")
        free, role = self.campaign.penalty_free_mail, self.campaign.penalty_role_account
        penalties = " + ".join([f"(CASE WHEN l.is_free_mail THEN {int(free)} ELSE 0 END)" if free else "0",
                                f"(CASE WHEN l.is_role_account THEN {int(role)} ELSE 0 END)" if role else "0"])
        mask = " + ".join(f"(CASE WHEN {flag} THEN {1 << i} ELSE 0 END)" for i, flag in enumerate(flags)) or "0"
        base = "CASE mask " + " ".join(f"WHEN {m} THEN {b}" for m, b in self.bases.items()) + " END"
        extras = []
        if free:
            extras.append(f"CASE WHEN free THEN '\"free_mail\":{{\"points\":{-int(free)},\"detail\":"
                          f"\"free-mail address\"}},' ELSE '' END")
        if role:
            extras.append(f"CASE WHEN role THEN '\"role_account\":{{\"points\":{-int(role)},\"detail\":"
                          f"\"role account\"}},' ELSE '' END")
        text = " || ".join(["'{'", *(f"e{i}" for i in range(len(entries))), *extras,
                            "'\"total\":{\"base\":'", "base", "',\"penalties\":'", "penalties",
                            "',\"score\":'", "value", "'}}'"])
        breakdown = f"CAST({text} AS jsonb)" if postgres else f"json({text})"
        lead_where, lead_params = self._where(only_unscored)
        columns = "".join(f", {entry} AS e{i}" for i, entry in enumerate(entries))
        # Each level computes its columns once per lead (on PostgreSQL ``OFFSET 0`` keeps the planner from folding
        # the levels together and repeating their expressions): matches and entries, the base, the score, the
        # breakdown; only the leads where either changed reach the UPDATE. A lead whose value changed since the
        # batch's values were read has no entry, and no breakdown: it waits for the next run.
        fence = " OFFSET 0" if postgres else ""
        greatest, least = ("GREATEST", "LEAST") if postgres else ("max", "min")
        if postgres:
            # The batch is read by its id range alone, behind a fence: with the status or the campaign in reach, the
            # planner may scan an index of those instead, every batch reading the whole campaign's entries.
            # Only the columns scoring reads: the others (raw data among them) need not be copied out of the row.
            needed = ", ".join(f"l.{column}" for column in ("id", "score", "score_breakdown", "is_free_mail",
                                                             "is_role_account", "company_size", "campaign_id",
                                                             "current_step", "status", *self.text_fields))
            leads = f"(SELECT {needed} FROM {table} AS l WHERE l.id > %s AND l.id <= %s{fence}) AS l"
            where = [lead_where]
        else:
            leads = f"{table} AS l"
            where = ["l.id > %s", "l.id <= %s", lead_where, *joins]
        matched = (f"SELECT l.id, l.score AS old_score, "
                   f"l.score_breakdown AS old_breakdown, l.is_free_mail AS free, "
                   f"l.is_role_account AS role, {mask} AS mask, {penalties} AS penalties{columns} "
                   f"FROM {leads}{''.join(f', {source}' for source in sources)} "
                   f"WHERE {' AND '.join(where)}{fence}")
        based = f"SELECT a.*, {base} AS base FROM ({matched}) AS a{fence}"
        valued = f"SELECT b.*, {greatest}(0, {least}(100, base - penalties)) AS value FROM ({based}) AS b{fence}"
        computed = f"SELECT c.*, {breakdown} AS breakdown FROM ({valued}) AS c{fence}"
        changed = ("old_score IS DISTINCT FROM value OR old_breakdown IS DISTINCT FROM breakdown" if postgres
                   else "old_score IS NOT value OR json(old_breakdown) IS NOT breakdown")
        sql = (f"UPDATE {table} SET score = n.value, score_breakdown = n.breakdown, scored_at = %s "
               f"FROM (SELECT id, value, breakdown FROM ({computed}) AS d "
               f"WHERE breakdown IS NOT NULL AND ({changed})) AS n "
               f"WHERE {table}.id = n.id AND {table}.id > %s AND {table}.id <= %s")
        # SQLite has its answers in the FROM before the id range; PostgreSQL has none there.
        return sql, [now, *flag_params, *entry_params, *answer_params, first, last, *lead_params, first, last]


# Where a lead's own company size goes in its breakdown entry, split there for the database to fill in.
_SIZE = "@@size@@"
_COMPACT = (",", ":")
