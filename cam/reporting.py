"""Live sales figures for the dashboard: what was sent, what came back, where each campaign's leads are.

Every function here reads the tables as they are now (no stored snapshot, so a send is counted the
moment it is recorded; only the sends of days that are over are remembered, see ``ClosedDays``), in
a fixed number of grouped queries however many campaigns, leads or emails exist, each over an index
that matches its filter (see docs/benchmarks.md for the plans and times at two million emails). Each
takes an optional ``campaign`` so a campaign's own page can show the same figures for it alone.

Periods are calendar days in the site's time zone (``settings.TIME_ZONE``): ``today`` starts at local
midnight, ``7d`` and ``30d`` at local midnight six and twenty-nine days before it, so the 7-day
figures are the sum of the last seven bars of the daily chart.

What is counted, and when:

- **sent**: emails whose status is ``SENT``, by ``sent_at``;
- **replies** (every category a person writes: positive, negative, unsubscribe, referral, question,
  neutral) and **positive** replies: messages read from the inboxes, by when CAM read them;
- **hard bounces** and **complaints**: emails with a hard-bounce notice or a complaint report read in
  the period (proven ones only: a notice held for a person or dismissed by one does not count, as in
  ``cam.decisions``), or a provider's ``bounced`` / ``complained`` event received in it for an email
  with no such notice — each email once a day (a period sums its days);
- **unsubscribes**, **meetings** and **won**: addresses whose lead became ``UNSUBSCRIBED`` in the period
  (an unsubscribe by link and one by reply alike), and leads that became ``MEETING_BOOKED`` or ``WON``
  in it and are still there (a lead whose meeting led to a sale counts as won).

Rates are percentages of the emails sent in the same period (None before the first send), so a reply
to an email sent the day before counts today: a day's rate can exceed what a campaign's rule, which
judges each email by what became of it, measures. The bounce and complaint rates carry the threshold
that guards them and a level against it (see ``kpis``).
"""

from __future__ import annotations

import threading
import time as pytime
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, TypedDict

from django.db.models import (
    BooleanField,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from cam.campaigns import DEFAULT_RULES
from cam.decisions import REPLY_CATEGORIES, UNPROVEN
from cam.models import Campaign, CampaignRule, InboundEmail, Lead, Mailbox, OutboundEmail, ProviderEvent
from cam.models.leads import REPORTED_OUTCOMES
from cam.outreach.planning import CAP_WINDOW, COUNTED

Period = Literal["today", "7d", "30d"]
Level = Literal["ok", "near", "over"]

# The periods staff can pick, as calendar days counted back from today (today included).
PERIOD_DAYS: dict[str, int] = {"today": 1, "7d": 7, "30d": 30}
PERIOD_LABELS: dict[str, str] = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days"}
# A rate at or above this share of its threshold is "near" it: time to look before the rule pauses.
NEAR_SHARE = Decimal("0.8")

Category = InboundEmail.Category
Status = Lead.Status
SENT = OutboundEmail.Status.SENT
Metric = CampaignRule.Metric
# The provider event that stands for each notice, so an email reported both ways is counted once.
PROVIDER_EVENTS: dict[str, str] = {Category.BOUNCE_HARD: "bounced", Category.COMPLAINT: "complained"}


class GuardedRate(TypedDict):
    """A rate a campaign rule watches: the value (percent, None before the first send), the lowest
    threshold that pauses a campaign on it (percent), and where the value stands against it."""

    value: float | None
    threshold: float
    level: Level


class Kpis(TypedDict):
    period: str
    label: str
    since: datetime
    sent: int
    replies: int
    positive: int
    reply_rate: float | None
    positive_rate: float | None
    hard_bounces: int
    complaints: int
    unsubscribes: int
    meetings: int
    won: int
    hard_bounce_rate: GuardedRate
    complaint_rate: GuardedRate


class Day(TypedDict):
    day: date
    sent: int
    replies: int
    positive: int
    bounces: int


class Funnel(TypedDict):
    campaign_id: int
    name: str
    status: str
    harvested: int
    qualified: int
    contacted: int
    replied: int
    positive: int
    won: int


class CategoryCount(TypedDict):
    category: str
    label: str
    count: int


class MailboxSends(TypedDict):
    mailbox_id: int
    name: str
    is_active: bool
    sent_today: int
    cap_used: int
    daily_cap: int
    cap_percent: float


# -- periods ------------------------------------------------------------------------------------------

def _period_days(period: str) -> int:
    """How many calendar days ``period`` spans; ``ValueError`` for an unknown period."""
    if period not in PERIOD_DAYS:
        raise ValueError(f"Unknown period {period!r}: one of {', '.join(PERIOD_DAYS)}.")
    return PERIOD_DAYS[period]


def period_start(period: str, *, now: datetime | None = None) -> datetime:
    """Local midnight of the period's first day, as an aware datetime; ``ValueError`` for an unknown period."""
    return _days_start(_period_days(period), now=now)


def _days_start(days: int, *, now: datetime | None) -> datetime:
    zone = timezone.get_default_timezone()
    first_day = timezone.localtime(now or timezone.now(), zone).date() - timedelta(days=days - 1)
    # Built from the date, not by subtracting hours, so a day that changes to or from summer time
    # still starts at midnight.
    return datetime.combine(first_day, time.min, tzinfo=zone)


def _rate(count: int, sent: int) -> float | None:
    return round(100 * count / sent, 3) if sent else None


# -- the queries each figure starts from -----------------------------------------------------------

def _sent(campaign: Campaign | None) -> QuerySet[OutboundEmail]:
    # The sequence's emails (read from the partial index of sent ones): answers are not sends.
    emails = OutboundEmail.objects.filter(status=SENT, kind=OutboundEmail.Kind.SEQUENCE)
    return emails.filter(campaign=campaign) if campaign is not None else emails


def _inbound(since: datetime, campaign: Campaign | None) -> QuerySet[InboundEmail]:
    messages = InboundEmail.objects.filter(created_at__gte=since)
    return messages.filter(lead__campaign=campaign) if campaign is not None else messages


def _noticed(category: str) -> Q:
    """A proven notice of ``category`` about an email: an inbound message CAM read."""
    return Q(category=category) & ~Q(confirmation__in=UNPROVEN)


def _provider_events(since: datetime, campaign: Campaign | None) -> QuerySet[ProviderEvent]:
    events = ProviderEvent.objects.filter(received_at__gte=since, event_type__in=PROVIDER_EVENTS.values(),
                                          outbound_email__isnull=False)
    return events.filter(outbound_email__campaign=campaign) if campaign is not None else events


def _provider_only(category: str) -> Q:
    """A provider's event of the kind matching ``category``, for an email no proven notice of it is about."""
    notice = InboundEmail.objects.filter(_noticed(category), outbound_email=OuterRef("outbound_email"))
    return Q(event_type=PROVIDER_EVENTS[category]) & ~Q(Exists(notice))


def _provider_counts() -> dict[str, Any]:
    return {
        "hard_bounces": Count("outbound_email", distinct=True, filter=_provider_only(Category.BOUNCE_HARD)),
        "complaints": Count("outbound_email", distinct=True, filter=_provider_only(Category.COMPLAINT)),
    }


# -- thresholds -----------------------------------------------------------------------------------

GUARDED: dict[str, str] = {"hard_bounce_rate": Metric.HARD_BOUNCE_RATE, "complaint_rate": Metric.COMPLAINT_RATE}


def thresholds(campaign: Campaign | None = None) -> dict[str, Decimal]:
    """The threshold each guarded rate is judged against (percent), in one query.

    The lowest threshold of the enabled "above" rules on that metric — of ``campaign``, or of any
    campaign — since that is the first to pause something. Without such a rule: the default rule's
    (``cam.campaigns.DEFAULT_RULES``), which reads the campaign's guard-rail field, or that field's
    default when no campaign is given.
    """
    rules = CampaignRule.objects.filter(enabled=True, comparison=CampaignRule.Comparison.ABOVE,
                                        metric__in=GUARDED.values())
    if campaign is not None:
        rules = rules.filter(campaign=campaign)
    grouped = rules.order_by().values("metric").annotate(lowest=Min("threshold"))
    lowest = {row["metric"]: row["lowest"] for row in grouped}
    defaults: dict[str, str | Decimal] = {metric: threshold for metric, _, threshold, *_ in DEFAULT_RULES}
    result: dict[str, Decimal] = {}
    for key, metric in GUARDED.items():
        if metric in lowest:
            result[key] = Decimal(lowest[metric])
            continue
        default = defaults[metric]
        if isinstance(default, str):  # a guard-rail field of the campaign (an unsaved one holds its default)
            default = getattr(campaign or Campaign(), default)
        result[key] = Decimal(str(default))
    return result


def level(value: float | None, threshold: Decimal) -> Level:
    """"ok" under 80 % of the threshold (or nothing measured yet), "near" from there up to the threshold
    itself (a rule fires only above it), "over" beyond it."""
    if value is None:
        return "ok"
    measured = Decimal(str(value))
    if measured > threshold:
        return "over"
    if measured == 0 or measured < threshold * NEAR_SHARE:
        return "ok"
    return "near"


def _guarded(count: int, sent: int, threshold: Decimal) -> GuardedRate:
    value = _rate(count, sent)
    return {"value": value, "threshold": float(threshold), "level": level(value, threshold)}


# -- days that are over ------------------------------------------------------------------------------

class ClosedDays:
    """The sends of the days before today, remembered by this process for an hour: the dashboard's
    biggest read (every email sent in 30 days, about 80,000 at 50 mailboxes' caps) done once, after
    which a page reads only today's sends — two queries either way, the cost fixed however much was
    sent.

    A sent email's ``sent_at`` does not change, so the past days' counts stay true. The memo is keyed
    by the newest send before today (its id and time, one index probe per page), so a database that
    holds other emails (another site, a test) never reads another's counts; the hour bounds the one
    case the key cannot see, an email whose send is recorded after midnight with a time before it (a
    recovered Resend email), to an hour of a one-email difference on the chart.
    """

    TTL = timedelta(hours=1)
    KEPT = 64  # campaigns' pages and the dashboard; more is a cache's job, not a memo's

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remembered: dict[tuple[Any, ...], tuple[float, dict[date, int]]] = {}

    def sends_by_day(self, since: datetime, *, campaign: Campaign | None, now: datetime | None) -> dict[date, int]:
        """Emails sent per local day from ``since`` (a local midnight) until now."""
        zone = timezone.get_default_timezone()
        today = _days_start(1, now=now)
        sent = _sent(campaign)
        newest = tuple(sent.filter(sent_at__lt=today).order_by("-sent_at").values_list("pk", "sent_at")[:1])
        key = (campaign.pk if campaign is not None else None, str(zone), since, today, newest)
        with self._lock:
            remembered = self._remembered.get(key)
        if remembered is not None and remembered[0] > pytime.monotonic():
            read_from = today
            counts = dict(remembered[1])
        else:
            read_from, counts = since, {}
        rows = (sent.filter(sent_at__gte=read_from).annotate(_day=TruncDate("sent_at", tzinfo=zone))
                .order_by().values("_day").annotate(n=Count("*")))  # COUNT(*): read from the index alone
        for row in rows:
            counts[row["_day"]] = row["n"]
        if read_from == since and since < today:
            with self._lock:
                if len(self._remembered) >= self.KEPT:
                    self._remembered.clear()
                self._remembered[key] = (pytime.monotonic() + self.TTL.total_seconds(),
                                         {day: n for day, n in counts.items() if day < today.date()})
        return counts

    def forget(self) -> None:
        with self._lock:
            self._remembered.clear()


closed_days = ClosedDays()


# -- the figures -----------------------------------------------------------------------------------

class Overview(TypedDict):
    kpis: Kpis
    series: list[Day]
    categories: list[CategoryCount]


def overview(period: str, *, days: int = 30, campaign: Campaign | None = None,
             now: datetime | None = None) -> Overview:
    """The period's ``kpis``, the ``daily_series`` of the last ``days`` and the period's
    ``replies_by_category``, reading each table once for all three (five queries): the sends grouped
    by day (two: see ``ClosedDays``), the inbound messages grouped by day and category together with
    the provider events grouped by day (a UNION ALL), the period's lead outcomes, the thresholds. The
    period's figures are the sums of its days, so the cards, the chart and the categories always
    agree. ``ValueError`` for an unknown period or one longer than ``days``."""
    since = period_start(period, now=now)
    if days < PERIOD_DAYS[period]:
        raise ValueError(f"The series of {days} days does not cover the period {period!r}.")
    days_read = _days(days, campaign=campaign, now=now)
    in_period = [day for day in days_read if day.start >= since]

    sent = sum(day.sent for day in in_period)
    replies = sum(day.replies for day in in_period)
    positive = sum(day.by_category.get(Category.POSITIVE, 0) for day in in_period)
    hard_bounces = sum(day.hard_bounces for day in in_period)
    complaints = sum(day.complaints for day in in_period)
    leads = Lead.objects.filter(status__in=REPORTED_OUTCOMES, status_changed_at__gte=since)
    if campaign is not None:
        leads = leads.filter(campaign=campaign)
    # One person unsubscribing stops their leads in every campaign: count the address once.
    outcomes = leads.aggregate(unsubscribes=Count("email", distinct=True, filter=Q(status=Status.UNSUBSCRIBED)),
                               meetings=Count("pk", filter=Q(status=Status.MEETING_BOOKED)),
                               won=Count("pk", filter=Q(status=Status.WON)))
    limits = thresholds(campaign)
    figures: Kpis = {
        "period": period, "label": PERIOD_LABELS[period], "since": since,
        "sent": sent, "replies": replies, "positive": positive,
        "reply_rate": _rate(replies, sent), "positive_rate": _rate(positive, sent),
        "hard_bounces": hard_bounces, "complaints": complaints,
        "unsubscribes": outcomes["unsubscribes"], "meetings": outcomes["meetings"], "won": outcomes["won"],
        "hard_bounce_rate": _guarded(hard_bounces, sent, limits["hard_bounce_rate"]),
        "complaint_rate": _guarded(complaints, sent, limits["complaint_rate"]),
    }

    series: list[Day] = [{"day": day.day, "sent": day.sent, "replies": day.replies,
                          "positive": day.by_category.get(Category.POSITIVE, 0), "bounces": day.hard_bounces}
                         for day in days_read]

    return {"kpis": figures, "series": series, "categories": _categories(in_period)}


def kpis(period: str, *, campaign: Campaign | None = None, now: datetime | None = None) -> Kpis:
    """The period's headline figures (see the module's docstring for what each counts): ``overview``
    over the period's own days. ``ValueError`` for an unknown period."""
    return overview(period, days=_period_days(period), campaign=campaign, now=now)["kpis"]


def daily_series(days: int = 30, *, campaign: Campaign | None = None, now: datetime | None = None) -> list[Day]:
    """Per day of the last ``days`` (oldest first, today last, days with nothing as 0): emails sent,
    replies, positive replies and hard bounces, counted as ``kpis`` counts them, in three queries."""
    return [{"day": day.day, "sent": day.sent, "replies": day.replies,
             "positive": day.by_category.get(Category.POSITIVE, 0), "bounces": day.hard_bounces}
            for day in _days(days, campaign=campaign, now=now)]


@dataclass
class _DayCounts:
    """What one calendar day saw: the raw material of every dated figure."""

    day: date
    start: datetime
    sent: int = 0
    by_category: dict[str, int] = field(default_factory=dict)  # inbound messages read, by category
    hard_bounces: int = 0  # emails with a proven notice or, failing one, a provider's event
    complaints: int = 0

    @property
    def replies(self) -> int:
        return sum(self.by_category.get(category, 0) for category in REPLY_CATEGORIES)


def _days(days: int, *, campaign: Campaign | None, now: datetime | None, sends: bool = True) -> list[_DayCounts]:
    """The last ``days`` calendar days (oldest first), counted in three queries: the sends (two, see
    ``ClosedDays``; none unless ``sends``), and the inbound messages by category with the provider
    events (a UNION ALL). An email's bounce notices and provider events count it once a day: the rule
    that judges a campaign (``cam.decisions``) counts each email once in all, the chart counts what
    each day brought."""
    if days < 1:
        raise ValueError("days must be at least 1.")
    zone = timezone.get_default_timezone()
    since = _days_start(days, now=now)
    first_day = since.date()
    result: dict[date, _DayCounts] = {}
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        result[day] = _DayCounts(day=day, start=datetime.combine(day, time.min, tzinfo=zone))

    for day, count in (closed_days.sends_by_day(since, campaign=campaign, now=now) if sends else {}).items():
        if day in result:
            result[day].sent = count

    proven = ~Q(confirmation__in=UNPROVEN)
    empty = Value("", output_field=CharField())
    zero = Value(0, output_field=IntegerField())
    inbound = (_inbound(since, campaign).annotate(_day=TruncDate("created_at", tzinfo=zone)).order_by()
               .values("_day", "category")
               .annotate(n=Count("pk"), notices=Count("outbound_email", distinct=True, filter=proven),
                         provider_bounces=zero, provider_complaints=zero))
    counts = _provider_counts()
    provider = (_provider_events(since, campaign).annotate(_day=TruncDate("received_at", tzinfo=zone),
                                                           _category=empty).order_by()
                .values("_day", "_category")
                .annotate(n=zero, notices=zero, provider_bounces=counts["hard_bounces"],
                          provider_complaints=counts["complaints"]))
    for row in inbound.union(provider, all=True):
        entry = result.get(row["_day"])
        if entry is None:
            continue
        category = row["category"]
        if row["n"]:
            entry.by_category[category] = entry.by_category.get(category, 0) + row["n"]
        if category == Category.BOUNCE_HARD:
            entry.hard_bounces += row["notices"]
        elif category == Category.COMPLAINT:
            entry.complaints += row["notices"]
        entry.hard_bounces += row["provider_bounces"]
        entry.complaints += row["provider_complaints"]
    return list(result.values())


FUNNEL_STAGES = ("harvested", "qualified", "contacted", "replied", "positive", "won")
POSITIVE_STATUSES = (Status.INTERESTED, Status.MEETING_BOOKED, Status.WON, Status.LOST)
NOT_QUALIFIED = (Status.NEW, Status.DISQUALIFIED)


# The order funnels are shown in: campaigns that are sending, then those waiting for a person, then drafts,
# then finished ones; the newest first within each.
FUNNEL_ORDER: dict[str, int] = {Campaign.Status.ACTIVE: 0, Campaign.Status.DEGRADED: 0, Campaign.Status.PAUSED: 1,
                                Campaign.Status.DRAFT: 2, Campaign.Status.COMPLETED: 3}


def campaign_funnels(*, campaign: Campaign | None = None, limit: int | None = None) -> list[Funnel]:
    """Campaigns with their leads at each stage, in two queries: the campaigns, then their leads counted
    in one grouped query (grouped by campaign, never joining the campaigns to every lead).

    - harvested: every lead of the campaign;
    - qualified: leads that passed qualification — any status but ``NEW`` and ``DISQUALIFIED``, or
      contacted (a lead whose address was stopped before its first email still passed it);
    - contacted: leads at least one email went out to (``last_contacted_at`` set);
    - replied: leads a person answered for (``replied_at`` set: auto-replies and bounces do not set it);
    - positive: leads that showed interest — ``INTERESTED`` (a positive reply or a question), or since
      ``MEETING_BOOKED``, ``WON`` or ``LOST`` after talking to us;
    - won: ``WON``.

    A lead is counted at every stage it reached, so each stage is (normally) a subset of the one before.
    Campaigns come sending first, then paused, draft and completed, the newest first in each;
    ``limit`` keeps the first so many, and only their leads are read (through the (campaign, status)
    index), so a page showing a dozen funnels does not count every lead of every campaign.
    """
    campaigns = Campaign.objects.all()
    if campaign is not None:
        campaigns = campaigns.filter(pk=campaign.pk)
    rows = sorted(campaigns.values_list("pk", "name", "status", "created_at"),
                  key=lambda row: (FUNNEL_ORDER.get(row[2], 9), -row[3].timestamp(), -row[0]))[:limit]
    # Counted by (campaign, status, contacted, replied), a few dozen rows a campaign, and folded into
    # stages here: every column the count needs is in the (campaign, status) index on PostgreSQL.
    grouped = (Lead.objects.filter(campaign_id__in=[row[0] for row in rows])
               .annotate(_contacted=ExpressionWrapper(Q(last_contacted_at__isnull=False), BooleanField()),
                         _replied=ExpressionWrapper(Q(replied_at__isnull=False), BooleanField()))
               .order_by().values_list("campaign_id", "status", "_contacted", "_replied").annotate(n=Count("*")))
    stages: dict[int, dict[str, int]] = {}
    for campaign_id, status, contacted, replied, n in grouped:
        row = stages.setdefault(campaign_id, dict.fromkeys(FUNNEL_STAGES, 0))
        row["harvested"] += n
        row["qualified"] += n if contacted or status not in NOT_QUALIFIED else 0
        row["contacted"] += n if contacted else 0
        row["replied"] += n if replied else 0
        row["positive"] += n if status in POSITIVE_STATUSES else 0
        row["won"] += n if status == Status.WON else 0
    funnels: list[Funnel] = []
    for pk, name, status, _ in rows:
        row = stages.get(pk, {})
        funnels.append({"campaign_id": pk, "name": name, "status": status, "harvested": row.get("harvested", 0),
                        "qualified": row.get("qualified", 0), "contacted": row.get("contacted", 0),
                        "replied": row.get("replied", 0), "positive": row.get("positive", 0),
                        "won": row.get("won", 0)})
    return funnels


def replies_by_category(period: str, *, campaign: Campaign | None = None,
                        now: datetime | None = None) -> list[CategoryCount]:
    """Inbound messages read in the period, by category (most first; messages not classified yet under
    "" as "Not classified yet"). Bounce notices held for a person count here: this is what arrived,
    not what was proven."""
    return _categories(_days(_period_days(period), campaign=campaign, now=now, sends=False))


def _categories(days: list[_DayCounts]) -> list[CategoryCount]:
    by_category: dict[str, int] = {}
    for day in days:
        for category, count in day.by_category.items():
            by_category[category] = by_category.get(category, 0) + count
    labels = dict(Category.choices)
    return [{"category": category, "label": labels.get(category, "Not classified yet"), "count": count}
            for category, count in sorted(by_category.items(), key=lambda item: (-item[1], item[0]))]


def mailbox_sends_today(*, campaign: Campaign | None = None, now: datetime | None = None) -> list[MailboxSends]:
    """Every mailbox (of ``campaign``, when given) by name: emails it sent since local midnight, and what
    its daily cap is measured on — the emails planned, sending or sent in the last 24 hours, as the send
    planner counts them (``cam.outreach.planning``) — against that cap. Counts are the mailbox's across
    all campaigns (the cap is the mailbox's). Two queries: the mailboxes, and one grouped count over
    the day's emails only."""
    now = now or timezone.now()
    sent_today = Q(status=SENT, sent_at__gte=_days_start(1, now=now))
    cap_used = Q(status__in=COUNTED, created_at__gte=now - CAP_WINDOW)
    sequence = Q(kind=OutboundEmail.Kind.SEQUENCE)
    mailboxes = Mailbox.objects.order_by("name", "pk")
    if campaign is not None:
        mailboxes = mailboxes.filter(campaigns=campaign)
    grouped = (OutboundEmail.objects.filter(sequence & (sent_today | cap_used)).order_by().values("mailbox_id")
               .annotate(sent_today=Count("pk", filter=sent_today), cap_used=Count("pk", filter=cap_used)))
    counts: dict[int, Any] = {row["mailbox_id"]: row for row in grouped}
    result: list[MailboxSends] = []
    for pk, name, is_active, daily_cap in mailboxes.values_list("pk", "name", "is_active", "daily_cap"):
        row = counts.get(pk, {})
        used = row.get("cap_used", 0)
        result.append({"mailbox_id": pk, "name": name, "is_active": is_active, "sent_today": row.get("sent_today", 0),
                       "cap_used": used, "daily_cap": daily_cap,
                       "cap_percent": round(min(100.0, 100 * used / daily_cap), 1)})
    return result
