"""Metrics per campaign and mailbox, and the campaign rules that pause or degrade a campaign on them.

Every count is a count of *emails*: an email is hard-bounced when a hard-bounce notice (an inbound
``BOUNCE_HARD``) or a provider's ``bounced`` event points at it, complained about when an inbound
``COMPLAINT`` or a provider's ``complained`` event does, replied to when a human reply is matched to
it, unsubscribed from when an unsubscribe reply answers it or the footer's link was used while it was
the lead's latest email (``unsubscribed_at``; a link click is not a reply), and so on (a bounce or
complaint held for a person to confirm, or dismissed by one, does not count). Rates are percentages
of the emails sent. A reply, bounce or complaint counts in the period its email was sent in, so a
rate compares like with like.

- ``metrics_compute`` counts every campaign and mailbox over the rolling window and all time and stores
  one ``MetricSnapshot`` per subject: from counted days (``MetricDay``), of which a cycle recounts only the
  days and subjects whose emails changed, and adds up again only the subjects whose counts can have changed.
- ``rules_evaluate`` measures each enabled rule of an active or degraded campaign over the
  campaign's last ``window`` sends (a mailbox rule: over each mailbox's last ``window`` sends for the
  campaign, judged on the worst mailbox) and applies the rule's action when it fires, through
  ``cam.campaigns``, recording a ``RuleDecision`` and queuing an alert in the same transaction. A
  degraded campaign sends at half its caps (``cam.outreach.planning.campaign_daily_cap``) until a
  person resumes it or the rule that degraded it clears: measured on the sends made since, it no
  longer fires, and the campaign is active again (a ``RuleDecision`` with the action ``CLEAR``). Each rule's
  measurement is kept (``RuleMeasurement``) and measured again only when its campaign's sends or their
  outcomes changed, a send grew past its age cutoff, or the rule or its floor changed; every rule is judged
  every cycle, on measurements that are always what measuring afresh would give.

Old enough: a rule with ``min_age_days`` (the positive-reply rule: 5) measures only sends at least that
old, the last ``window`` of them, since a send from this morning has had no time to be answered.

Same evidence: a decision remembers ``evidence_until``, the ``sent_at`` of the newest send it
measured. That rule then measures only emails sent after it, so once staff resume a campaign the
rule does not fire again on the sends it already judged; it fires again once enough new sends (its
``min_sample``) show the problem. The campaign's other rules keep measuring every send: a
complaint that arrives after a bounce pause, on an old send, still counts for the complaint rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    DateField,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cam.alerts.service import alert_queue
from cam.campaigns import campaign_apply_rule
from cam.models import (
    Campaign,
    CampaignRule,
    HumanAlertLog,
    InboundEmail,
    Mailbox,
    MetricCursor,
    MetricDay,
    MetricSnapshot,
    OutboundEmail,
    ProviderEvent,
    RuleDecision,
    RuleMeasurement,
)
from cam.models.decisions import METRICS_COMPUTED, Scope, percent_text

logger = logging.getLogger(__name__)

METRICS_WINDOW_DAYS = 7

Category = InboundEmail.Category
Metric = CampaignRule.Metric
Action = CampaignRule.Action

# Inbound categories written by a person answering an email (not a machine, not a bounce).
REPLY_CATEGORIES = [Category.POSITIVE, Category.NEGATIVE, Category.UNSUBSCRIBE, Category.REFERRAL,
                    Category.QUESTION, Category.NEUTRAL]

# Counted per email: the flag each count needs, as a filter on an annotated OutboundEmail queryset.
FLAG_COUNTS = {
    "bounced_hard": "_hard",
    "bounced_soft": "_soft",
    "complaints": "_complaint",
    "replies": "_reply",
    "positive": "_positive",
    "negative": "_negative",
    "unsubscribes": "_unsubscribe",
    "out_of_office": "_ooo",
}

# The count each rule metric is a rate of (per email sent). Keyed by str: rules hold their choice's value.
METRIC_COUNTS: dict[str, str] = {
    Metric.HARD_BOUNCE_RATE: "bounced_hard",
    Metric.COMPLAINT_RATE: "complaints",
    Metric.POSITIVE_REPLY_RATE: "positive",
    Metric.REPLY_RATE: "replies",
    Metric.UNSUBSCRIBE_RATE: "unsubscribes",
}

ALERT_TYPES: dict[str, HumanAlertLog.AlertType] = {Action.PAUSE: HumanAlertLog.AlertType.CAMPAIGN_PAUSED,
                                                   Action.DEGRADE: HumanAlertLog.AlertType.CAMPAIGN_DEGRADED}
ACTION_WORDS: dict[str, str] = {Action.PAUSE: "paused", Action.DEGRADE: "degraded"}
# Which statuses a rule with each action fires in (a degrade rule has nothing to fire on a degraded
# campaign: the one that degraded it is measured there only to see whether it clears).
EVALUATED_IN: dict[str, tuple[str, ...]] = {Action.PAUSE: (Campaign.Status.ACTIVE, Campaign.Status.DEGRADED),
                                             Action.DEGRADE: (Campaign.Status.ACTIVE,)}


def _inbound(*categories: str) -> Exists:
    # A bounce or complaint held for a person, or dismissed by one, proved nothing: counting it would
    # let anyone who can send a forged report pause a campaign.
    return Exists(InboundEmail.objects.filter(outbound_email=OuterRef("pk"), category__in=categories)
                  .exclude(confirmation__in=UNPROVEN))


UNPROVEN = (InboundEmail.Confirmation.NEEDED, InboundEmail.Confirmation.DISMISSED)


def _provider(event_type: str) -> Exists:
    return Exists(ProviderEvent.objects.filter(outbound_email=OuterRef("pk"), event_type=event_type))


def _with_flags(queryset: QuerySet[OutboundEmail]) -> QuerySet[OutboundEmail]:
    """Each email with one boolean per outcome (subqueries on its own id: no row fan-out)."""
    return queryset.annotate(
        _hard=_inbound(Category.BOUNCE_HARD) | _provider("bounced"),
        _soft=Q(soft_bounces__gt=0) | _inbound(Category.BOUNCE_SOFT),
        _complaint=_inbound(Category.COMPLAINT) | _provider("complained"),
        _reply=_inbound(*REPLY_CATEGORIES),
        _positive=_inbound(Category.POSITIVE),
        _negative=_inbound(Category.NEGATIVE),
        # By reply, or through the footer's link (cam.outreach.unsubscribe.unsubscribe_by_link).
        _unsubscribe=Q(unsubscribed_at__isnull=False) | _inbound(Category.UNSUBSCRIBE),
        _ooo=_inbound(Category.OUT_OF_OFFICE),
    )


def _rate(count: int, sent: int) -> float | None:
    return round(100 * count / sent, 3) if sent else None


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
    """Counts plus ``delivered`` (sent, less hard bounces) and a ``<count>_rate`` per outcome."""
    sent = counts["sent"]
    result: dict[str, Any] = {**counts, "delivered": sent - counts["bounced_hard"]}
    for name in FLAG_COUNTS:
        result[f"{name}_rate"] = _rate(counts[name], sent)
    return result


def _empty() -> dict[str, int]:
    return {"sent": 0, "failed": 0, **{name: 0 for name in FLAG_COUNTS}}


# Each inbound category an outcome is read from, as one bit of a number per email; the provider's events too.
CATEGORY_BITS: dict[str, int] = {category: 1 << position for position, category in enumerate(
    (Category.BOUNCE_HARD, Category.BOUNCE_SOFT, Category.COMPLAINT, Category.OUT_OF_OFFICE, *REPLY_CATEGORIES))}
EVENT_BITS: dict[str, int] = {"bounced": 1, "complained": 2}


def _bits(model: Any, field: str, bits: dict[str, int]) -> Coalesce:
    """The bits of ``bits`` set by the email's rows of ``model`` (a reply's category, an event's type), ORed
    together as a sum of distinct bits: one probe of ``model``'s index on the email, not one per outcome."""
    bit = Case(*[When(**{field: key}, then=Value(value)) for key, value in bits.items()], default=Value(0))
    rows = model.objects.filter(outbound_email=OuterRef("pk"), **{f"{field}__in": list(bits)})
    if model is InboundEmail:
        rows = rows.exclude(confirmation__in=UNPROVEN)
    summed = rows.order_by().values("outbound_email").annotate(bits=Sum(bit, distinct=True)).values("bits")
    return Coalesce(Subquery(summed, output_field=IntegerField()), Value(0))


def _outcome_conditions() -> dict[str, str]:
    """Per count of ``FLAG_COUNTS``, its condition on a row of ``_count_emails``'s counted emails: the same
    outcomes as ``_with_flags``'s flags."""
    def replied(*categories: str) -> str:
        return f"(replied & {sum(CATEGORY_BITS[category] for category in categories)}) <> 0"

    def reported(event_type: str) -> str:
        return f"(reported & {EVENT_BITS[event_type]}) <> 0"

    conditions = {
        "bounced_hard": f"{replied(Category.BOUNCE_HARD)} OR {reported('bounced')}",
        "bounced_soft": f"soft_bounces > 0 OR {replied(Category.BOUNCE_SOFT)}",
        "complaints": f"{replied(Category.COMPLAINT)} OR {reported('complained')}",
        "replies": replied(*REPLY_CATEGORIES),
        "positive": replied(Category.POSITIVE),
        "negative": replied(Category.NEGATIVE),
        # By reply, or through the footer's link (cam.outreach.unsubscribe.unsubscribe_by_link).
        "unsubscribes": f"unsubscribed IS NOT NULL OR {replied(Category.UNSUBSCRIBE)}",
        "out_of_office": replied(Category.OUT_OF_OFFICE),
    }
    assert conditions.keys() == FLAG_COUNTS.keys()
    return conditions


def _count_emails(emails: QuerySet[OutboundEmail], *, by_day: bool) -> list[dict[str, Any]]:
    """``sent`` and every count of ``FLAG_COUNTS`` over ``emails`` per campaign and mailbox (and UTC day of
    sending when ``by_day``), in one query: each email's replies and events read once, as two numbers of bits
    (``_bits``), in a materialized CTE that the counts then read; the same outcomes as ``_with_flags``'s ten
    probes per email."""
    day = _sent_day() if by_day else Value(None, output_field=DateField())
    columns = {"campaign": F("campaign_id"), "mailbox": F("mailbox_id"), "day": day,
               "soft_bounces": F("soft_bounces"), "unsubscribed": F("unsubscribed_at"),
               "replied": _bits(InboundEmail, "category", CATEGORY_BITS),
               "reported": _bits(ProviderEvent, "event_type", EVENT_BITS)}
    counted = emails.order_by().annotate(**{f"_{name}": value for name, value in columns.items()})
    sql, params = counted.values(*(f"_{name}" for name in columns)).query.sql_with_params()
    counts = ", ".join(f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)" for condition in _outcome_conditions().values())
    with connection.cursor() as cursor:
        cursor.execute(f"WITH counted({', '.join(columns)}) AS MATERIALIZED ({sql}) SELECT campaign, mailbox, day,"
                       f" COUNT(*), {counts} FROM counted GROUP BY campaign, mailbox, day", params)
        rows = cursor.fetchall()
    names = ("campaign_id", "mailbox_id", "_day", *DAY_COUNTS)
    result = [dict(zip(names, row, strict=True)) for row in rows]
    for row in result:
        if isinstance(row["_day"], str):  # SQLite's date, as stored
            row["_day"] = date.fromisoformat(row["_day"])
    return result


def _sent_emails() -> QuerySet[OutboundEmail]:
    """The sequence's sent emails (a person's answers to replies are not sends the rates judge), over the
    partial index of sent ones."""
    return OutboundEmail.objects.filter(status=OutboundEmail.Status.SENT, kind=OutboundEmail.Kind.SEQUENCE,
                                        sent_at__isnull=False)


def _utc_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


Subjects = dict[tuple[str, int], dict[str, int]]


def _by_subject(rows: Any, names: tuple[str, ...]) -> Subjects:
    """Rows counted per (campaign, mailbox) folded into per-subject counts of ``names``: one grouped query
    serves both kinds of subject."""
    result: Subjects = {}
    for row in rows:
        for scope, subject_id in ((Scope.CAMPAIGN, row["campaign_id"]), (Scope.MAILBOX, row["mailbox_id"])):
            if subject_id is None:
                continue
            counts = result.setdefault((scope, subject_id), dict.fromkeys(names, 0))
            for name in names:
                counts[name] += row[name]
    return result


# -- the counted days -----------------------------------------------------------------------------------

DAY_COUNTS = ("sent", *FLAG_COUNTS)
DAYS_CURSOR = "days"
WINDOW_CURSOR = "window"  # where the last metrics step's window started
# Each look for changed emails starts this long before the last one began: a change is stamped when it is
# made but seen once its transaction commits, and no step holds a transaction nearly this long.
LOOK_BACK = timedelta(minutes=15)


def _sent_day() -> TruncDate:
    return TruncDate("sent_at", tzinfo=UTC)


def _changed_emails(since: datetime) -> list[QuerySet[OutboundEmail]]:
    """The sent emails whose outcomes may have changed since ``since``, as parts of a UNION whose every part
    reads its own index: sent then, answered by a reply read or reclassified then, a held bounce or complaint
    confirmed or dismissed then, a provider's event received then, unsubscribed from by link then."""
    about = {"outbound_email__isnull": False}
    sent = _sent_emails()
    classified = InboundEmail.objects.filter(classified_at__gte=since, **about).values("outbound_email")
    decided = InboundEmail.objects.filter(confirmation_at__gte=since, **about).values("outbound_email")
    reported = ProviderEvent.objects.filter(received_at__gte=since, **about).values("outbound_email")
    return [sent.filter(sent_at__gte=since), sent.filter(unsubscribed_at__gte=since), sent.filter(pk__in=classified),
            sent.filter(pk__in=decided), sent.filter(pk__in=reported)]


Changed = set[tuple[date, int, int | None]]


def _changed_days(since: datetime) -> Changed:
    """The (UTC day, campaign, mailbox) of every sent email whose counts may have changed since ``since``
    (``_changed_emails``), in one query."""
    parts = [emails.annotate(_day=_sent_day()).order_by().values_list("_day", "campaign_id", "mailbox_id")
             for emails in _changed_emails(since)]
    changed: Changed = set()
    for day, campaign_id, mailbox_id in parts[0].union(*parts[1:]):
        changed.add((date.fromisoformat(day) if isinstance(day, str) else day, campaign_id, mailbox_id))
    return changed


Subject = tuple[str, int]


def _subjects_of(changed: Changed) -> set[Subject]:
    return {(Scope.CAMPAIGN, campaign_id) for _, campaign_id, _ in changed} | {
        (Scope.MAILBOX, mailbox_id) for _, _, mailbox_id in changed if mailbox_id is not None}


def _ids(subjects: set[Subject], scope: str) -> list[int]:
    return sorted(subject_id for kind, subject_id in subjects if kind == scope)


def _about(subjects: set[Subject], *, campaign: str, mailbox: str) -> Q:
    """Rows of ``subjects``: a campaign's by its ``campaign`` field, a mailbox's by its ``mailbox`` field."""
    return (Q(**{f"{campaign}__in": _ids(subjects, Scope.CAMPAIGN)})
            | Q(**{f"{mailbox}__in": _ids(subjects, Scope.MAILBOX)}))


def _of_subjects(subjects: set[Subject]) -> Q:
    """The stored days of ``subjects``."""
    campaigns, mailboxes = _ids(subjects, Scope.CAMPAIGN), _ids(subjects, Scope.MAILBOX)
    return Q(scope=Scope.CAMPAIGN, subject_id__in=campaigns) | Q(scope=Scope.MAILBOX, subject_id__in=mailboxes)


def _stored_days(subjects: set[Subject] | None) -> QuerySet[MetricDay]:
    days = MetricDay.objects.all()
    return days if subjects is None else days.filter(_of_subjects(subjects))


def _emails_of(emails: QuerySet[OutboundEmail], subjects: set[Subject] | None) -> QuerySet[OutboundEmail]:
    """``emails`` of ``subjects`` (all when None): a campaign's counts from them are whole, and so are a
    mailbox's; the other subjects' counts from them are not (``_kept`` drops them)."""
    return emails if subjects is None else emails.filter(_about(subjects, campaign="campaign_id",
                                                                mailbox="mailbox_id"))


def _kept(counted: Subjects, subjects: set[Subject] | None) -> Subjects:
    return counted if subjects is None else {key: counts for key, counts in counted.items() if key in subjects}


def _pairs(changed: Changed) -> dict[date, set[Subject]]:
    """Per UTC day, the subjects (campaign, and mailbox when there is one) of the emails in ``changed``."""
    pairs: dict[date, set[Subject]] = {}
    for day, campaign_id, mailbox_id in changed:
        subjects = pairs.setdefault(day, set())
        subjects.add((Scope.CAMPAIGN, campaign_id))
        if mailbox_id is not None:
            subjects.add((Scope.MAILBOX, mailbox_id))
    return pairs


def _stored_pairs(pairs: dict[date, set[Subject]]) -> Q:
    """The stored days of ``pairs``: each day's row of each of its subjects."""
    stored = Q()
    for day, subjects in pairs.items():
        stored |= Q(day=day) & _of_subjects(subjects)
    return stored


def _count_days(pairs: dict[date, set[Subject]] | None) -> list[MetricDay]:
    """The counts of each subject on each day of ``pairs`` (of every subject on every day when None), from the
    emails: one grouped query. Only the changed days of the changed subjects are read (through the index of a
    campaign's sends by time, for a campaign), not every email of the days some subject changed."""
    emails = _sent_emails()
    if pairs is not None:
        spans = Q()
        for day, subjects in pairs.items():
            spans |= Q(sent_at__gte=_utc_start(day), sent_at__lt=_utc_start(day + timedelta(days=1))) & _about(
                subjects, campaign="campaign_id", mailbox="mailbox_id")
        emails = emails.filter(spans)
    rows = _count_emails(emails, by_day=True)
    per_day: dict[date, list[Any]] = {}
    for row in rows:
        per_day.setdefault(row["_day"], []).append(row)
    # A day's emails of a changed mailbox count towards campaigns whose day did not change, partly: dropped.
    return [MetricDay(scope=scope, subject_id=subject_id, day=day, **counts)
            for day, day_rows in per_day.items()
            for (scope, subject_id), counts in _kept(_by_subject(day_rows, DAY_COUNTS),
                                                    None if pairs is None else pairs[day]).items()]


Deltas = dict[Subject, dict[str, int]]


def _days_refresh(cursor: datetime | None, *, started: datetime, full: bool) -> Deltas | None:
    """``metric_days_refresh``'s work, in the caller's transaction, from the days cursor ``cursor``: returns, per
    subject whose days were recounted, how much each of its counts changed over all its days (new days less the
    stored ones they replace), or None when every day was recounted."""
    if full or cursor is None or cursor > started:
        MetricDay.objects.all().delete()
        MetricDay.objects.bulk_create(_count_days(None), batch_size=5_000)
        return None
    # Only the changed subjects' changed days: a day's other subjects are as they were, and so are a changed
    # subject's other days.
    changed = _changed_days(cursor - LOOK_BACK)
    deltas: Deltas = {subject: dict.fromkeys(DAY_COUNTS, 0) for subject in _subjects_of(changed)}
    if changed:
        pairs = _pairs(changed)
        stored = MetricDay.objects.filter(_stored_pairs(pairs))
        for row in stored.values("scope", "subject_id", *DAY_COUNTS):
            delta = deltas[(row["scope"], row["subject_id"])]
            for name in DAY_COUNTS:
                delta[name] -= row[name]
        stored.delete()
        days = _count_days(pairs)
        for day in days:
            delta = deltas[(day.scope, day.subject_id)]
            for name in DAY_COUNTS:
                delta[name] += getattr(day, name)
        MetricDay.objects.bulk_create(days, batch_size=5_000)
    return deltas


def _cursors_save(**cursors: datetime) -> None:
    MetricCursor.objects.bulk_create([MetricCursor(name=name, scanned_at=at) for name, at in cursors.items()],
                                     update_conflicts=True, unique_fields=["name"], update_fields=["scanned_at"])


def metric_days_refresh(*, full: bool = False) -> set[Subject] | None:
    """Bring ``MetricDay`` up to date: recount the days of the emails that changed since the last look, for the
    campaigns and mailboxes they belong to (every day on the first look, when ``full``, or when the clock went
    back), in one transaction. Returns the subjects recounted (None: all). A fixed number of queries however
    many emails or days. The next ``metrics_compute`` adds up every subject again: the changes seen here are
    no longer there for it to see.

    Not seen: an email deleted, or whose status or subject changed after it was sent — rebuilt by
    ``full`` (``manage.py cam_run_job worker_cycle`` does not; ``metrics_compute(full=True)`` does).
    """
    started = timezone.now()
    cursor = MetricCursor.objects.filter(name=DAYS_CURSOR).first()
    with transaction.atomic():
        deltas = _days_refresh(cursor.scanned_at if cursor else None, started=started, full=full)
        _cursors_save(**{DAYS_CURSOR: started})
        MetricCursor.objects.filter(name=WINDOW_CURSOR).delete()
    return None if deltas is None else set(deltas)


Periods = dict[str, dict[str, int]]


def _grouped(since: datetime, subjects: set[Subject] | None = None, *,
             whole: set[Subject] | None = None) -> dict[Subject, Periods]:
    """Per subject (of ``subjects``; all when None), the counts all time and since ``since``: the stored days
    (the window's from the day after ``since``'s), the part of ``since``'s own day after it counted from its
    emails. With ``whole``, only those subjects' counts all time are added up (from every day they have); the
    others' days before the window are not read, and their ``all`` is left out (the caller has it). Two queries
    (none for no subject)."""
    if subjects is not None and not subjects:
        return {}
    boundary = since.astimezone(UTC).date()
    stored = {f"all__{name}": Sum(name, default=0) for name in DAY_COUNTS}
    stored |= {f"win__{name}": Sum(name, filter=Q(day__gt=boundary), default=0) for name in DAY_COUNTS}
    result: dict[Subject, Periods] = {}

    def periods(key: Subject) -> Periods:
        return result.setdefault(key, {"all": {**_empty()}, "win": {**_empty()}})

    days = _stored_days(subjects)
    if whole is not None:
        in_window = Q(day__gt=boundary)
        days = days.filter(in_window | _of_subjects(whole) if whole else in_window)
    row: Any
    for row in days.order_by().values("scope", "subject_id").annotate(**stored):
        key = (row["scope"], row["subject_id"])
        stored_periods = periods(key)
        for name in DAY_COUNTS:
            if whole is None or key in whole:
                stored_periods["all"][name] += row[f"all__{name}"]
            stored_periods["win"][name] += row[f"win__{name}"]
    rest_of_day = _sent_emails().filter(sent_at__gte=since, sent_at__lt=_utc_start(boundary + timedelta(days=1)))
    partial = _count_emails(_emails_of(rest_of_day, subjects), by_day=False)
    for key, counts in _kept(_by_subject(partial, DAY_COUNTS), subjects).items():
        for name in DAY_COUNTS:
            periods(key)["win"][name] += counts[name]
    return result


def _failed(since: datetime) -> dict[Subject, dict[str, int]]:
    """Every subject's failed emails, all time (``all``) and since ``since`` (``win``), counted as they are
    from a covering index: one query."""
    failed = (OutboundEmail.objects.filter(status=OutboundEmail.Status.FAILED, kind=OutboundEmail.Kind.SEQUENCE)
              .annotate(_at=Coalesce("sent_at", "updated_at")).order_by().values("campaign_id", "mailbox_id")
              .annotate(all=Count("updated_at"), win=Count("updated_at", filter=Q(_at__gte=since))))
    return _by_subject(failed, ("all", "win"))


def metrics_count_emails(group_field: str, since: datetime) -> dict[int, dict[str, dict[str, int]]]:
    """The same counts straight from every email, in one query: what the stored days must always add up
    to (the tests hold them to it), and how they were counted before there were days to add up."""
    sent, failed = Q(status=OutboundEmail.Status.SENT), Q(status=OutboundEmail.Status.FAILED)
    recent = Q(_at__gte=since)
    aggregates = {"all__sent": Count("pk", filter=sent), "all__failed": Count("pk", filter=failed),
                  "win__sent": Count("pk", filter=sent & recent), "win__failed": Count("pk", filter=failed & recent)}
    for name, flag in FLAG_COUNTS.items():
        aggregates[f"all__{name}"] = Count("pk", filter=sent & Q(**{flag: True}))
        aggregates[f"win__{name}"] = Count("pk", filter=sent & recent & Q(**{flag: True}))
    rows = (_with_flags(OutboundEmail.objects.filter(sent | failed, kind=OutboundEmail.Kind.SEQUENCE,
                                                     **{f"{group_field}__isnull": False}))
            .annotate(_at=Coalesce("sent_at", "updated_at"))
            .order_by().values(group_field).annotate(**aggregates))
    result: dict[int, dict[str, dict[str, int]]] = {}
    for row in rows:
        periods: dict[str, dict[str, int]] = {"all": {}, "win": {}}
        for key, value in row.items():
            if "__" in key:
                period, name = key.split("__", 1)
                periods[period][name] = value
        result[row[group_field]] = periods
    return result


def _slid(since: datetime, before: datetime) -> set[Subject]:
    """The subjects with an email sent between ``before`` and ``since`` (either way round): those whose
    window gained or lost it when its start moved from one to the other. One query, a range of an index."""
    low, high = min(since, before), max(since, before)
    rows = (_sent_emails().filter(sent_at__gte=low, sent_at__lt=high).order_by()
            .values("campaign_id", "mailbox_id").distinct())
    return set(_by_subject(({**row, "one": 1} for row in rows), ("one",)))


COUNTED = tuple(_empty())


def _snapshot_counts(period: Any) -> dict[str, int] | None:
    """A stored period's counts (rates are made from them), or None when it holds other counts."""
    if not isinstance(period, dict):
        return None
    counts: dict[str, int] = {}
    for name in COUNTED:
        value = period.get(name)
        if not isinstance(value, int):
            return None
        counts[name] = value
    return counts


def metrics_compute(*, now: datetime | None = None, window_days: int = METRICS_WINDOW_DAYS,
                    full: bool = False) -> dict[str, Any]:
    """Count every campaign's and mailbox's emails over the last ``window_days`` and all time, store
    them as ``MetricSnapshot`` rows and return them.

    Returns ``{"campaigns": {id: {"window": {...}, "all_time": {...}}}, "mailboxes": {...}}``; each
    period holds sent, failed, delivered, bounced_hard, bounced_soft, complaints, replies, positive,
    negative, unsubscribes, out_of_office and a ``<count>_rate`` (percent of sent, None before the
    first send) for each outcome. The sent emails' counts are added up from ``MetricDay`` after the days
    that changed are recounted (``metric_days_refresh``; every day when ``full``), so a cycle reads a
    day's emails, not every email ever sent. Only the subjects whose counts can have changed since the last
    computation are added up again: those whose days were recounted, those with an email sent where the
    window's start moved (from the last computation's to this one's), those without a snapshot of this
    window; every other subject's stored counts stand, with its failed emails counted afresh. A snapshot
    whose counts did not change is not rewritten: when every snapshot was last computed is kept once
    (``snapshot_computed_at``). All of it in one transaction,
    so the stored counts and the cursors that say up to when they are right move together. A fixed number
    of queries, however many campaigns or emails exist.
    """
    started = timezone.now()
    now = now or started
    since = now - timedelta(days=window_days)
    cursors = dict(MetricCursor.objects.filter(name__in=[DAYS_CURSOR, WINDOW_CURSOR]).values_list("name",
                                                                                                   "scanned_at"))
    with transaction.atomic():
        deltas = _days_refresh(cursors.get(DAYS_CURSOR), started=started, full=full)
        before = cursors.get(WINDOW_CURSOR)
        recount: set[Subject] | None = None
        # The subjects added up over every day they have: those without a snapshot of this window to start from.
        whole: set[Subject] = set()
        if deltas is not None and before is not None:
            recount = set(deltas) | _slid(since, before)
        # Per subject: its snapshot's window, the snapshot, and its counts (None: none of this window to start from).
        stored: dict[Subject, tuple[int | None, Any, Any, tuple[dict[str, int], dict[str, int]] | None]] = {}
        subjects: list[tuple[str, str, Any]] = [("campaigns", Scope.CAMPAIGN, Campaign.objects),
                                                ("mailboxes", Scope.MAILBOX, Mailbox.objects)]
        for _, scope, manager in subjects:
            for pk, days, window, all_time in manager.order_by("pk").values_list(
                    "pk", "metric_snapshots__window_days", "metric_snapshots__window", "metric_snapshots__all_time"):
                window_counts, all_counts = _snapshot_counts(window), _snapshot_counts(all_time)
                counts = (window_counts, all_counts) if window_counts and all_counts and days == window_days else None
                stored[(scope, pk)] = (days, window, all_time, counts)
                if recount is not None and counts is None:
                    recount.add((scope, pk))
                    whole.add((scope, pk))
        grouped = _grouped(since, recount, whole=None if recount is None else whole)
        failed = _failed(since)
        result: dict[str, Any] = {"campaigns": {}, "mailboxes": {}}
        snapshots: list[MetricSnapshot] = []
        for name, scope, _ in subjects:
            field = "campaign" if scope == Scope.CAMPAIGN else "mailbox"
            for (kind, subject_id), (days, stored_window, stored_all, counts) in stored.items():
                if kind != scope:
                    continue
                key = (scope, subject_id)
                if recount is None or counts is None:  # added up whole (``whole``, when recounting)
                    periods = grouped.get(key, {})
                    window_counts = {**_empty(), **periods.get("win", {})}
                    all_counts = {**_empty(), **periods.get("all", {})}
                elif key in recount:
                    # Its window added up again; all time, its stored counts moved by what its recounted days
                    # changed (the stored counts are those days' sums as of the last computation).
                    window_counts = {**_empty(), **grouped.get(key, {}).get("win", {})}
                    delta = (deltas or {}).get(key, {})
                    all_counts = {**counts[1], **{name: counts[1][name] + delta.get(name, 0) for name in DAY_COUNTS}}
                else:
                    window_counts, all_counts = counts
                failures = failed.get(key, {"all": 0, "win": 0})
                window = _with_rates({**window_counts, "failed": failures["win"]})
                all_time = _with_rates({**all_counts, "failed": failures["all"]})
                result[name][subject_id] = {"window": window, "all_time": all_time}
                if days == window_days and stored_window == window and stored_all == all_time:
                    continue  # the same counts: not rewritten (snapshot_computed_at says when they were computed)
                snapshots.append(MetricSnapshot(key=f"{scope}:{subject_id}", scope=scope, window_days=window_days,
                                                window=window, all_time=all_time, computed_at=now,
                                                **{f"{field}_id": subject_id}))
        if snapshots:
            MetricSnapshot.objects.bulk_create(snapshots, update_conflicts=True, unique_fields=["key"],
                                               update_fields=["window_days", "window", "all_time", "computed_at"])
        # The others are as computed now too, which the one time below says for all of them: rewriting each
        # would cost every snapshot a new row version every cycle.
        _cursors_save(**{DAYS_CURSOR: started, WINDOW_CURSOR: since, METRICS_COMPUTED: now})
    return result


def metrics_step() -> dict[str, int]:
    """The worker's metrics step: compute and store, and say how many subjects were counted."""
    return {name: len(rows) for name, rows in metrics_compute().items()}


# -- rules -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunningRule:
    """A running rule as a cycle judges it: its settings, its campaign's status and its kept measurement, read
    as one row. The rule (with its campaign) is loaded as a model instance only when it fires: building three
    instances for each of hundreds of rules, every cycle, cost more than judging them."""

    pk: int
    campaign_id: int
    campaign_status: str
    metric: str
    comparison: str
    threshold: Decimal
    window: int
    min_sample: int
    min_age_days: int
    scope: str
    action: str
    kept_basis: str | None  # its RuleMeasurement's, None when it has none
    kept_measured: list[list[Any]] | None


# A rule as measuring reads it: a loaded one (``running_rules``) or the model's instance (the admin's, tests').
Rule = CampaignRule | RunningRule

# A rule's measurement per mailbox (None: the campaign's, all mailboxes together): sample, hits, newest send.
Measured = dict[int | None, tuple[int, int, datetime]]

# Each metric as a number in the measuring query: cheaper to hash and join on than its name.
METRIC_CODES: dict[str, int] = {metric: code for code, metric in enumerate(METRIC_COUNTS, start=1)}

# Bounds standing in for "no lower bound" and "no age cutoff", so that every rule's range is an index range.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# One way an email counts for a metric: a row of ``table`` whose ``key`` is the email's id and that meets
# ``condition`` (with its ``params``).
Source = tuple[str, str, str, list[Any]]


def _outcome_sources(metrics: set[str]) -> dict[int, list[Source]]:
    """Per metric of ``metrics`` (by its ``METRIC_CODES`` number), the ways a sent email counts for it: the
    outcomes of ``_with_flags``'s flags."""
    unproven = list(UNPROVEN)
    inbound, events = _table(InboundEmail), _table(ProviderEvent)

    def replied(*categories: str) -> Source:
        return (inbound, "outbound_email_id",
                f"category IN ({', '.join(['%s'] * len(categories))})"
                f" AND confirmation NOT IN ({', '.join(['%s'] * len(unproven))})", [*categories, *unproven])

    def reported(event_type: str) -> Source:
        return events, "outbound_email_id", "event_type = %s", [event_type]

    # Through the footer's link (cam.outreach.unsubscribe.unsubscribe_by_link).
    by_link: Source = (_table(OutboundEmail), "id", "unsubscribed_at IS NOT NULL", [])
    sources: dict[str, list[Source]] = {Metric.HARD_BOUNCE_RATE: [replied(Category.BOUNCE_HARD), reported("bounced")],
                                        Metric.COMPLAINT_RATE: [replied(Category.COMPLAINT), reported("complained")],
                                        Metric.POSITIVE_REPLY_RATE: [replied(Category.POSITIVE)],
                                        Metric.REPLY_RATE: [replied(*REPLY_CATEGORIES)],
                                        Metric.UNSUBSCRIBE_RATE: [replied(Category.UNSUBSCRIBE), by_link]}
    return {METRIC_CODES[metric]: sources[metric] for metric in sorted(metrics)}


def _hit_sql(metrics: set[str]) -> tuple[str, list[Any]]:
    """Whether the picked send ``p`` counts for its rule's metric: index probes of that metric's outcomes (on
    the email's replies, provider events or itself) for that send only. Cheaper than reading every outcome
    since the oldest picked send and hashing them, even for every rule at once: a rule on sends five days old
    reaches back past most of a campaign's outcomes (``bench/worker.py``'s data: 474 rules, 205,000 picked
    sends, 290–350 ms probed against 630–710 ms hashed; a cycle's few changed campaigns, 25–45 ms against
    50–70 ms)."""
    cases: list[str] = []
    params: list[Any] = []
    for code, sources in _outcome_sources(metrics).items():
        probes = [f"EXISTS (SELECT 1 FROM {table} h WHERE h.{key} = p.id AND {condition})"
                  for table, key, condition, _ in sources]
        cases.append(f"WHEN {int(code)} THEN ({' OR '.join(probes)})")
        params += [param for _, _, _, condition_params in sources for param in condition_params]
    return f"CASE p.metric {' '.join(cases)} ELSE FALSE END", params


def _picked_sql(scope: str, rows: int) -> str:
    """The emails each rule of ``rules`` (a VALUES table of ``rows`` rows) measures: its campaign's last ``win``
    sends in ``(after, cutoff]``, per mailbox for a mailbox rule, as ``picked(rule_id, metric, id, sent_at)``
    (and ``mailbox_id`` for mailbox rules).

    On PostgreSQL a campaign rule reads its last sends with a LATERAL ``LIMIT`` backwards down the index of
    the campaign's sends (``outbound_campaign_sends_idx``: campaign, sent_at, id): as many index entries as
    its window, however many the campaign has sent. Elsewhere, and for mailbox rules (one window per
    mailbox), each rule's range is ranked."""
    emails = _table(OutboundEmail)
    sendable = (f"o.status = '{OutboundEmail.Status.SENT}' AND o.kind = '{OutboundEmail.Kind.SEQUENCE}'"
                " AND o.sent_at IS NOT NULL AND o.sent_at > r.after AND o.sent_at <= r.cutoff")
    postgres = connection.vendor == "postgresql"
    if postgres:
        # One array per column (built by ``_measure``): the same short text for any number of rules, which the
        # driver converts once, where a VALUES row per rule cost it milliseconds of parsing every cycle.
        kinds = ("bigint", "bigint", "integer", "timestamptz", "timestamptz", "integer")
        rules = (f"rules(rule_id, campaign_id, metric, after, cutoff, win) AS "
                 f"(SELECT * FROM unnest({', '.join(f'%s::{kind}[]' for kind in kinds)}))")
    else:
        row = "(" + ", ".join(["%s"] * 6) + ")"
        rules = f"rules(rule_id, campaign_id, metric, after, cutoff, win) AS (VALUES {', '.join([row] * rows)})"
    # Only what the index on the campaign's sends holds, for a campaign rule: read without a visit to the table.
    columns = "o.id, o.sent_at" + (", o.mailbox_id" if scope == Scope.MAILBOX else "")
    if postgres and scope == Scope.CAMPAIGN:
        return (f"WITH {rules}, picked AS (SELECT r.rule_id, r.metric, o.* FROM rules r CROSS JOIN LATERAL ("
                f"SELECT {columns} FROM {emails} o WHERE o.campaign_id = r.campaign_id AND {sendable}"
                " ORDER BY o.sent_at DESC, o.id DESC LIMIT r.win) o)")
    partition = "r.rule_id, o.mailbox_id" if scope == Scope.MAILBOX else "r.rule_id"
    mailbox = " AND o.mailbox_id IS NOT NULL" if scope == Scope.MAILBOX else ""
    return (f"WITH {rules}, ranked AS (SELECT r.rule_id, r.metric, r.win, {columns}, ROW_NUMBER() OVER ("
            f"PARTITION BY {partition} ORDER BY o.sent_at DESC, o.id DESC) AS place FROM rules r"
            f" JOIN {emails} o ON o.campaign_id = r.campaign_id AND {sendable}{mailbox}),"
            " picked AS (SELECT * FROM ranked WHERE place <= win)")


def _as_datetime(value: Any) -> datetime:
    """A ``MAX(sent_at)`` as the database returns it (SQLite: the stored text, UTC) as an aware datetime."""
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    assert parsed is not None, value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Rules measured per query: each is six parameters, well under every database's limit.
RULES_PER_QUERY = 1_000


def _measure(scope: str, rules: Sequence[Rule], floors: dict[int, datetime], now: datetime) -> dict[int, Measured]:
    """``rules_measure`` for rules measured as ``scope`` says: one query per ``RULES_PER_QUERY`` rules."""
    measured: dict[int, Measured] = {rule.pk: {} for rule in rules}
    adapt = connection.ops.adapt_datetimefield_value
    for start in range(0, len(rules), RULES_PER_QUERY):
        batch = rules[start:start + RULES_PER_QUERY]
        rows = [(rule.pk, rule.campaign_id, METRIC_CODES[rule.metric], adapt(floors.get(rule.pk) or _EARLIEST),
                 adapt(now - timedelta(days=rule.min_age_days) if rule.min_age_days else _LATEST), rule.window)
                for rule in batch]
        # PostgreSQL's rules are six arrays, one per column (``_picked_sql``); elsewhere a row of values per rule.
        params: list[Any] = ([list(column) for column in zip(*rows, strict=True)] if connection.vendor == "postgresql"
                             else [value for row in rows for value in row])
        group = "p.rule_id, p.mailbox_id" if scope == Scope.MAILBOX else "p.rule_id"
        subject = group if scope == Scope.MAILBOX else "p.rule_id, NULL"
        # The sample and its newest send per rule (and mailbox); then its hits: the picked sends with an outcome
        # for the rule's metric, each send once however many outcomes it has.
        hit, hit_params = _hit_sql({rule.metric for rule in batch})
        sql = (f"{_picked_sql(scope, len(batch))}"
               f" SELECT {subject}, COUNT(*), MAX(p.sent_at), 0 FROM picked p GROUP BY {group}"
               f" UNION ALL SELECT {subject}, 0, NULL, COUNT(*) FROM picked p WHERE {hit} GROUP BY {group}")
        with connection.cursor() as cursor:
            cursor.execute(sql, params + hit_params)
            rows = cursor.fetchall()
        for rule_id, mailbox_id, sample, newest, _ in rows:
            if sample:
                measured[rule_id][mailbox_id] = (sample, 0, _as_datetime(newest))
        for rule_id, mailbox_id, _, _, hits in rows:
            if hits:
                sample, _, newest = measured[rule_id][mailbox_id]
                measured[rule_id][mailbox_id] = (sample, hits, newest)
    return measured


def rules_measure(rules: Sequence[Rule], *, floors: dict[int, datetime],
                  now: datetime | None = None) -> dict[int, Measured]:
    """Every rule's measurement at once: over its campaign's last ``rule.window`` sent emails (sent after
    ``floors[rule.pk]`` when there is one, and old enough at ``now`` for a rule with ``min_age_days``; for a
    mailbox rule, each mailbox's last ``window`` sends for the campaign), how many were sent, how many count
    for the rule's metric, and when the newest was sent, keyed by mailbox (None for a campaign rule; a rule
    with nothing to measure has no key). One query per scope among ``rules`` (per ``RULES_PER_QUERY``),
    however many campaigns, mailboxes or emails."""
    now = now or timezone.now()
    measured: dict[int, Measured] = {}
    for scope in (Scope.CAMPAIGN, Scope.MAILBOX):
        scoped = [rule for rule in rules if rule.scope == scope]
        if scoped:
            measured |= _measure(scope, scoped, floors, now)
    return measured


def rule_measure(rule: CampaignRule, *, after: datetime | None,
                 now: datetime | None = None) -> tuple[int, int, datetime | None]:
    """Over the campaign's last ``rule.window`` sent emails (sent after ``after``, when given, and old
    enough at ``now`` for a rule with ``min_age_days``): how many were sent, how many count for the
    rule's metric, and when the newest was sent."""
    floors = {rule.pk: after} if after is not None else {}
    return _measure(Scope.CAMPAIGN, [rule], floors, now or timezone.now())[rule.pk].get(None, (0, 0, None))


def rule_measure_mailboxes(rule: CampaignRule, *, after: datetime | None,
                           now: datetime | None = None) -> dict[int, tuple[int, int, datetime]]:
    """For a mailbox rule, in one query: per mailbox that sent for the campaign (after ``after``; old
    enough as for ``rule_measure``), over that mailbox's last ``rule.window`` sends of the campaign, the
    sample, the hits and when the newest was sent."""
    floors = {rule.pk: after} if after is not None else {}
    measured = _measure(Scope.MAILBOX, [rule], floors, now or timezone.now())[rule.pk]
    return {mailbox_id: value for mailbox_id, value in measured.items() if mailbox_id is not None}


# -- measurements kept between cycles -----------------------------------------------------------------

RULES_CURSOR = "rules"  # when the last evaluation began (the server's clock): changes are looked for from there
RULES_CLOCK = "rules_clock"  # the ``now`` it measured at: where the age cutoffs stood
RULES_FULL = "rules_full"  # when every rule was last measured afresh
# Every rule is measured afresh at least this often: what the kept measurements cannot see (a sent email
# deleted with its lead) is seen within it.
REMEASURE_EVERY = timedelta(hours=1)


def _basis(rule: Rule, floor: datetime | None) -> str:
    """What a measurement is of: a kept one with another basis (the rule was edited, or it decided since) is not
    used."""
    after = floor.astimezone(UTC).isoformat() if floor else ""
    return f"{rule.campaign_id}|{rule.scope}|{rule.metric}|{rule.window}|{rule.min_age_days}|{after}"


def _kept_measurement(rule: RunningRule, basis: str) -> Measured | None:
    if rule.kept_basis != basis or rule.kept_measured is None:
        return None
    return {mailbox_id: (sample, hits, _as_datetime(newest)) for mailbox_id, sample, hits, newest in rule.kept_measured}


def _changed_campaigns(since: datetime, *, ages: set[int], clock: datetime, now: datetime) -> set[int]:
    """The campaigns whose rules may measure something else than at ``clock`` (looking for changes from
    ``since``): a send or an outcome since (``_changed_emails``), or for a rule measuring sends older than
    ``age`` days (each of ``ages``), a send that has grown that old since. One query."""
    parts = [emails.order_by().values_list("campaign_id") for emails in _changed_emails(since)]
    for age in sorted(ages):
        # No look back here: a send that grows this old was committed days ago.
        grown = _sent_emails().filter(sent_at__gt=clock - timedelta(days=age), sent_at__lte=now - timedelta(days=age))
        parts.append(grown.order_by().values_list("campaign_id"))
    return {campaign_id for (campaign_id,) in parts[0].union(*parts[1:])}


def _still_right(rules: list[RunningRule], judged: list[RunningRule], bases: dict[int, str], now: datetime, *,
                 started: datetime, cursors: dict[str, datetime]) -> dict[int, Measured] | None:
    """The kept measurements of ``judged`` that are still right (None: none can be trusted), after dropping
    every kept measurement that may not be: of a campaign changed since the last evaluation
    (``_changed_campaigns``), or of a rule not among the loaded ``rules`` (disabled, or its campaign not
    running: what changes meanwhile goes unseen). Two queries."""
    scanned, clock, full_at = cursors.get(RULES_CURSOR), cursors.get(RULES_CLOCK), cursors.get(RULES_FULL)
    if scanned is None or clock is None or full_at is None or scanned > started or clock > now \
            or started - full_at >= REMEASURE_EVERY:
        RuleMeasurement.objects.all().delete()
        return None
    ages = {rule.min_age_days for rule in rules if rule.min_age_days}
    changed = _changed_campaigns(scanned - LOOK_BACK, ages=ages, clock=clock, now=now)
    not_running = ~Q(**{f"rule__{name}": value for name, value in RUNNING.items()})
    RuleMeasurement.objects.filter(Q(rule__campaign_id__in=changed) | not_running).delete()
    kept: dict[int, Measured] = {}
    for rule in judged:
        measurement = None if rule.campaign_id in changed else _kept_measurement(rule, bases[rule.pk])
        if measurement is not None:
            kept[rule.pk] = measurement
    return kept


def _rules_measured(rules: list[RunningRule], judged: list[RunningRule], floors: dict[int, datetime],
                    now: datetime) -> dict[int, Measured]:
    """``rules_measure`` of ``judged`` (of the loaded ``rules``, with their kept measurements), measuring only
    the rules whose kept measurement may be out of date: none kept, kept of something else, or its campaign
    changed since the last evaluation (``_still_right``). A kept measurement is always right as of the last
    evaluation. Every rule is measured afresh every ``REMEASURE_EVERY``, when there is no cursor yet, or when
    a clock went back. The measurements kept and the cursors move together, in one transaction."""
    started = timezone.now()
    cursors = dict(MetricCursor.objects.filter(name__in=[RULES_CURSOR, RULES_CLOCK, RULES_FULL])
                   .values_list("name", "scanned_at"))
    bases = {rule.pk: _basis(rule, floors.get(rule.pk)) for rule in judged}
    with transaction.atomic():
        kept = _still_right(rules, judged, bases, now, started=started, cursors=cursors)
        measured = kept or {}
        missing = [rule for rule in judged if rule.pk not in measured]
        if missing:
            fresh = rules_measure(missing, floors=floors, now=now)
            measured |= fresh
            RuleMeasurement.objects.bulk_create(
                [RuleMeasurement(rule_id=rule.pk, basis=bases[rule.pk], measured=[
                    [mailbox_id, sample, hits, newest.isoformat()]
                    for mailbox_id, (sample, hits, newest) in sorted(fresh[rule.pk].items(),
                                                                     key=lambda item: item[0] or 0)])
                 for rule in missing],
                update_conflicts=True, unique_fields=["rule"], update_fields=["basis", "measured"])
        full_at = started if kept is None else cursors[RULES_FULL]
        _cursors_save(**{RULES_CURSOR: started, RULES_CLOCK: now, RULES_FULL: full_at})
    return measured


def _fires(rule: Rule, value: Decimal) -> bool:
    if rule.comparison == CampaignRule.Comparison.ABOVE:
        return value > rule.threshold
    return value < rule.threshold


def rule_reason(rule: CampaignRule, *, value: Decimal, sample: int, mailbox: Mailbox | None = None) -> str:
    """"Hard-bounce rate 7.1 % over the last 100 sends is above 5 %", for a mailbox rule
    "… over the last 40 sends from Sales <sales@agency.test> …", and for a rule on old enough sends
    "… over the last 200 sends older than 5 days …"."""
    return (f"{_measured_text(rule, value=value, sample=sample, mailbox=mailbox)} {rule.get_comparison_display()} "
            f"{percent_text(rule.threshold)} %")


def _measured_text(rule: CampaignRule, *, value: Decimal, sample: int, mailbox: Mailbox | None) -> str:
    """"Hard-bounce rate 7.1 % over the last 100 sends older than 5 days from Sales <sales@agency.test>"."""
    source = f" from {mailbox.name} <{mailbox.from_email}>" if mailbox is not None else ""
    days = rule.min_age_days
    age = f" older than {days} day{'s' if days != 1 else ''}" if days else ""
    return f"{rule.get_metric_display()} {percent_text(value)} % over the last {sample} sends{age}{source}"


@dataclass(frozen=True)
class Finding:
    """What one rule measured: the sample it judged, the value, and (for a mailbox rule) where."""

    sample: int
    value: Decimal
    evidence_until: datetime
    mailbox_id: int | None = None


def _value(hits: int, sample: int) -> Decimal:
    return Decimal(100 * hits) / Decimal(sample)


def _finding(rule: Rule, measured: Measured) -> Finding | None:
    """The measurement a rule is judged on (from ``rules_measure``), or None while below its minimum sample.

    A campaign rule has one. A mailbox rule measures each mailbox and is judged on the worst one that
    has its minimum sample (the highest value for an "above" rule, the lowest for "below"); its
    evidence runs to the newest send of any mailbox measured, since all of them were judged.
    """
    if rule.scope == Scope.CAMPAIGN:
        sample, hits, newest = measured.get(None, (0, 0, None))
        if sample < rule.min_sample or newest is None:
            return None
        return Finding(sample=sample, value=_value(hits, sample), evidence_until=newest)
    judged = [Finding(sample=sample, value=_value(hits, sample), evidence_until=newest, mailbox_id=mailbox_id)
              for mailbox_id, (sample, hits, newest) in sorted(measured.items())
              if mailbox_id is not None and sample >= rule.min_sample]
    if not judged:
        return None
    pick = max if rule.comparison == CampaignRule.Comparison.ABOVE else min
    worst = pick(judged, key=lambda finding: finding.value)
    return Finding(sample=worst.sample, value=worst.value, mailbox_id=worst.mailbox_id,
                   evidence_until=max(finding.evidence_until for finding in judged))


def _degraded_by(rules: list[RunningRule]) -> dict[int, int]:
    """For each degraded campaign (those of ``rules`` among them), the rule that degraded it: the rule of its
    latest decision that set DEGRADED (only a rule sets that status). One query, none when no rule's campaign
    is degraded."""
    degraded = {rule.campaign_id for rule in rules if rule.campaign_status == Campaign.Status.DEGRADED}
    if not degraded:
        return {}
    found: dict[int, int] = {}
    # The degraded campaigns by a join (as the rules were loaded), not by a list of ids: see ``rules_evaluate``.
    for campaign_id, rule_id in (RuleDecision.objects.filter(campaign__status=Campaign.Status.DEGRADED,
                                                             status_after=Campaign.Status.DEGRADED)
                                 .order_by("campaign_id", "-created_at", "-pk").values_list("campaign_id", "rule_id")):
        found.setdefault(campaign_id, rule_id)
    return found


RUNNING: dict[str, Any] = {"enabled": True, "campaign__status__in": [Campaign.Status.ACTIVE, Campaign.Status.DEGRADED]}


_RUNNING_FIELDS = ("pk", "campaign_id", "campaign__status", "metric", "comparison", "threshold", "window", "min_sample",
                   "min_age_days", "scope", "action", "measurement__basis", "measurement__measured")


def running_rules() -> list[RunningRule]:
    """The enabled rules of active and degraded campaigns, with their campaigns' status and kept measurements, in
    the order they are judged: per campaign, pause rules first (descending action: PAUSE before DEGRADE). One
    query."""
    return [RunningRule(*row) for row in CampaignRule.objects.filter(**RUNNING).order_by("campaign_id", "-action", "pk")
            .values_list(*_RUNNING_FIELDS)]


def rules_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule of every active or degraded campaign; apply the ones that fire, and
    clear the degrade rules that no longer hold.

    Per campaign, pause rules go first and evaluation stops at the first rule that changes the
    status. A rule is skipped while fewer than ``min_sample`` sends are measured (for a mailbox rule:
    in every mailbox). A rule that fires changes the status through ``campaign_apply_rule`` with the
    measured value as the reason, records a ``RuleDecision`` and queues a CAMPAIGN_PAUSED /
    CAMPAIGN_DEGRADED alert keyed by the decision, all in one transaction.

    A degraded campaign's degrade rule keeps measuring the sends made since it fired (after its
    ``evidence_until``): once at least ``min_sample`` of them no longer meet its condition, the rule
    clears — the campaign is set active again through ``campaign_apply_rule`` (``CLEAR``), with the
    measurement as the reason, and a ``RuleDecision`` records it. Returns counts: ``evaluated``,
    ``below_sample``, ``fired``, ``paused``, ``degraded``, ``cleared``.
    """
    now = now or timezone.now()
    counts = {"evaluated": 0, "below_sample": 0, "fired": 0, "paused": 0, "degraded": 0, "cleared": 0}
    rules = running_rules()
    if not rules:
        return counts
    # The running rules' decisions by a join rather than by a list of their ids, which the driver would parse
    # into the query's text every cycle.
    floors = dict(RuleDecision.objects.filter(**{f"rule__{name}": value for name, value in RUNNING.items()})
                  .order_by().values("rule_id").annotate(until=Max("evidence_until"))
                  .values_list("rule_id", "until"))
    degraded_by = _degraded_by(rules)
    # The rule that degraded its campaign is measured there to see whether it clears.
    clearing = {rule.pk for rule in rules
                if degraded_by.get(rule.campaign_id) == rule.pk and rule.action == Action.DEGRADE}
    judged = [rule for rule in rules if rule.pk in clearing or rule.campaign_status in EVALUATED_IN[rule.action]]
    # Every rule measured up front, in one query per scope, unless its kept measurement is still right: a rule
    # after one that changed its campaign's status is measured but not judged.
    measured = _rules_measured(rules, judged, floors, now)
    changed: set[int] = set()
    for rule in judged:
        if rule.campaign_id in changed:
            continue
        counts["evaluated"] += 1
        finding = _finding(rule, measured[rule.pk])
        if finding is None:
            counts["below_sample"] += 1
            continue
        fires, clears = _fires(rule, finding.value), rule.pk in clearing
        if (clears and fires) or (not clears and not fires):
            continue  # still holds on the campaign it degraded, or does not fire on this one
        if _rule_apply(rule, finding, action=RuleDecision.Action.CLEAR if clears else rule.action):
            changed.add(rule.campaign_id)
            if clears:
                counts["cleared"] += 1
            else:
                counts["fired"] += 1
                counts[ACTION_WORDS[rule.action]] += 1
    return counts


def rule_clear_reason(rule: CampaignRule, *, value: Decimal, sample: int, mailbox: Mailbox | None = None) -> str:
    """"Rule cleared: positive-reply rate 0.9 % over the last 200 sends older than 5 days, since it degraded
    the campaign, is no longer below 0.5 %"."""
    measured = _measured_text(rule, value=value, sample=sample, mailbox=mailbox)
    comparison = rule.get_comparison_display().removeprefix("is ")
    return (f"Rule cleared: {measured[:1].lower()}{measured[1:]}, since it degraded the campaign, is no longer "
            f"{comparison} {percent_text(rule.threshold)} %")


@transaction.atomic
def _rule_apply(running: RunningRule, finding: Finding, *, action: str) -> RuleDecision | None:
    rule = CampaignRule.objects.select_related("campaign").get(pk=running.pk)
    campaign = rule.campaign
    mailbox = Mailbox.objects.filter(pk=finding.mailbox_id).first() if finding.mailbox_id else None
    words = rule_clear_reason if action == RuleDecision.Action.CLEAR else rule_reason
    reason = words(rule, value=finding.value, sample=finding.sample, mailbox=mailbox)
    status_before = campaign.status
    if not campaign_apply_rule(campaign_id=campaign.pk, action=action, reason=reason):
        return None  # its status changed meanwhile (a person paused it, say): nothing to decide
    campaign.refresh_from_db(fields=["status", "status_reason", "status_changed_at"])
    decision = RuleDecision.objects.create(
        rule=rule, campaign=campaign, mailbox=mailbox, metric=rule.metric,
        measured_value=finding.value.quantize(Decimal("0.001")), threshold=rule.threshold,
        sample_size=finding.sample, action=action, status_before=status_before,
        status_after=campaign.status, reason=reason, evidence_until=finding.evidence_until)
    if action == RuleDecision.Action.CLEAR:
        logger.info("Campaign %s active again: rule %s cleared: %s", campaign.pk, rule.pk, reason)
        return decision
    link = reverse("admin:cam_campaign_change", args=[campaign.pk])
    alert_queue(alert_type=ALERT_TYPES[rule.action], title=f"Campaign {campaign.name} {ACTION_WORDS[rule.action]}",
                body=f"{reason}.\n\nThe campaign is now {campaign.get_status_display().lower()}: {link}",
                idempotency_key=f"rule-decision:{decision.pk}", campaign=campaign)
    logger.warning("Campaign %s %s by rule %s: %s", campaign.pk, ACTION_WORDS[rule.action], rule.pk, reason)
    return decision
