"""Planning a send: which due leads get which email, from which mailbox, now — and why the rest wait.

A lead is due when it is ``IN_SEQUENCE`` and its ``next_send_at`` has passed. It is planned — an
``OutboundEmail`` row, rendered, ready to claim — when its campaign is sending, its address and domain
are not suppressed, the send window is open (in the lead's time zone when known, else the
campaign's), the campaign and a mailbox have room under their caps for the last 24 hours (a degraded
campaign at half its caps: ``campaign_daily_cap``), the mailbox's pace allows one more today and this hour
(its warm-up allowance spread over the window's hours left: ``cam.outreach.pacing``), the mailbox's
minimum gap (with its jitter) has passed, and the mailbox's sending domain does not fail SPF or DMARC
(unless staff overrode that: ``cam.domains``). A due lead that is held back gets a ``blocked_reason``.
Disabled steps are passed over (``step_after``).

The whole plan costs a fixed number of queries, however many leads are due.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Min, Prefetch
from django.utils import timezone

from cam.bulk import bulk_update_values
from cam.domains.services import held_domains
from cam.models import Campaign, Lead, Mailbox, OutboundEmail, SequenceStep
from cam.models.campaigns import step_after
from cam.outreach.messages import new_message_id
from cam.outreach.pacing import gap_ends_at, hour_share, warmup_allowance
from cam.outreach.rendering import TemplateProblem, render_step, template_context
from cam.outreach.unsubscribe import unsubscribe_url
from cam.outreach.windows import local_time, next_window_opening, window_is_open
from cam.suppressions import suppressed_addresses

Blocked = Lead.BlockedReason
SENDING_CAMPAIGNS = (Campaign.Status.ACTIVE, Campaign.Status.DEGRADED)
# Emails that count against today's caps: everything planned that was not refused or cancelled.
COUNTED = (OutboundEmail.Status.PENDING, OutboundEmail.Status.CLAIMED, OutboundEmail.Status.SENT,
           OutboundEmail.Status.RETRY, OutboundEmail.Status.UNKNOWN)
CAP_WINDOW = timedelta(hours=24)
# Due leads looked at per plan; the rest are still due next cycle.
PLAN_LIMIT = 5000


def campaign_steps(campaign_ids: Iterable[int]) -> defaultdict[int, list[SequenceStep]]:
    """The steps of each campaign, in one query: ``step_after`` finds a lead's next one among them."""
    steps: defaultdict[int, list[SequenceStep]] = defaultdict(list)
    for step in SequenceStep.objects.filter(campaign_id__in=list(campaign_ids)):
        steps[step.campaign_id].append(step)
    return steps


def step_delay(step: SequenceStep) -> timedelta:
    return timedelta(days=step.delay_days, hours=step.delay_hours)


@dataclass(frozen=True)
class CapUse:
    """What counts against one campaign's or mailbox's daily cap: ``used`` emails planned within
    ``CAP_WINDOW``, the oldest of them at ``oldest`` (it leaves the count first, CAP_WINDOW later)."""

    used: int
    oldest: datetime


def cap_use(field: str, ids: Iterable[int], *, now: datetime) -> dict[int, CapUse]:
    """Per campaign (``field`` = "campaign_id") or mailbox ("mailbox_id") among ``ids``, the emails counted
    against its daily cap at ``now``; one with none is left out. One query."""
    # The sequence's emails: a person's answers to replies do not use up the caps.
    rows = (OutboundEmail.objects.filter(**{f"{field}__in": list(ids)}, created_at__gte=now - CAP_WINDOW,
                                         status__in=COUNTED, kind=OutboundEmail.Kind.SEQUENCE)
            .order_by().values(field).annotate(n=Count("pk"), oldest=Min("created_at")))
    return {row[field]: CapUse(used=row["n"], oldest=row["oldest"]) for row in rows}


@dataclass(frozen=True)
class CampaignCap:
    """A campaign's daily cap as the planner applies it now (``campaign_daily_cap``)."""

    cap: int  # the most emails the campaign may plan in CAP_WINDOW
    usual: int  # what a degraded campaign takes half of; its own daily cap otherwise
    halved: bool  # the campaign is degraded

    def words(self) -> str:
        """"sending at half its caps (25 of 50 a day) until resumed or the rule clears" while halved."""
        if not self.halved:
            return ""
        return f"sending at half its caps ({self.cap:,} of {self.usual:,} a day) until resumed or the rule clears"


def campaign_daily_cap(campaign: Campaign, *, mailbox_caps: Iterable[int]) -> CampaignCap:
    """The one rule for a campaign's effective daily cap, which the planner applies and Diagnose, the
    dashboard and the API report: its own ``daily_cap`` — or, while it is DEGRADED (a rule found it doing
    badly), half of what its caps allow together, rounded down but at least 1, until a person resumes it
    or the rule clears.

    What its caps allow together is the lower of its own cap and its active mailboxes' caps added up
    (``mailbox_caps``): a campaign that sends 50 a day through one mailbox capped at 50 sends 25 once
    degraded, even if its own cap says 200. The mailboxes' own caps stay as they are: they are shared
    with the other campaigns sending from them, which are not slowed down."""
    return daily_cap_of(status=campaign.status, daily_cap=campaign.daily_cap, mailbox_caps=mailbox_caps)


def daily_cap_of(*, status: str, daily_cap: int, mailbox_caps: Iterable[int]) -> CampaignCap:
    """``campaign_daily_cap`` of a campaign with this ``status`` and ``daily_cap``, for a caller that has read
    only those (the dashboard, for every campaign: no model instance made for each)."""
    if status != Campaign.Status.DEGRADED:
        return CampaignCap(cap=daily_cap, usual=daily_cap, halved=False)
    together = sum(mailbox_caps)
    usual = min(daily_cap, together) if together else daily_cap
    return CampaignCap(cap=max(1, usual // 2), usual=usual, halved=True)


def mailbox_sent_times(ids: Iterable[int], *, now: datetime) -> dict[int, list[datetime]]:
    """Per mailbox among ``ids``, when each email counted against its daily cap at ``now`` was planned
    (what ``cap_use`` counts, one by one: the pace also needs today's and this hour's), in ascending
    order, as ``mailbox_pace_wait`` takes them. One query."""
    times: dict[int, list[datetime]] = defaultdict(list)
    for mailbox_id, created_at in (OutboundEmail.objects.filter(
            mailbox_id__in=list(ids), created_at__gte=now - CAP_WINDOW, status__in=COUNTED,
            kind=OutboundEmail.Kind.SEQUENCE).order_by().values_list("mailbox_id", "created_at")):
        times[mailbox_id].append(created_at)
    for found in times.values():
        found.sort()
    return times


def mailbox_pace_wait(mailbox: Mailbox, campaign: Campaign, *, sent: list[datetime], now: datetime) -> str:
    """"" when ``mailbox``'s pace lets it take one more email for ``campaign`` now (``sent``: when its
    emails of the last 24 hours were planned), else ``MAILBOX_PACE``. Its day and hours are those of the
    campaign's send window, in the campaign's time zone: today's warm-up allowance, spread over the
    window's hours left. The ramp's days are counted as its day one was set (the server's date at the
    first send), so a campaign ahead of the server's clock never starts a mailbox on its second day.

    ``sent`` is in ascending order: the plan asks this for every lead and every mailbox it could take,
    so today's and this hour's counts are found by bisection, not by reading every time each time."""
    local = local_time(campaign, now)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    hour_start = local.replace(minute=0, second=0, microsecond=0)
    today = len(sent) - bisect_left(sent, day_start)
    this_hour = len(sent) - bisect_left(sent, hour_start)
    allowance = warmup_allowance(mailbox, timezone.localdate(now))
    if today >= allowance:
        return Blocked.MAILBOX_PACE
    share = hour_share(allowance=allowance, used_before_this_hour=today - this_hour,
                       hours_left=campaign.send_end_hour - local.hour)
    return Blocked.MAILBOX_PACE if this_hour >= share else ""


def mailbox_wait(mailbox: Mailbox, *, used: int, now: datetime, planned_now: int = 0) -> str:
    """"" when ``mailbox``, with ``used`` emails counted against its cap and ``planned_now`` planned in
    this plan, can take one more email now; else the blocked reason (disconnected, cap, then gap)."""
    if mailbox.needs_reconnect:  # its OAuth2 grant is gone: nothing can leave it until it is connected again
        return Blocked.MAILBOX_DISCONNECTED
    if used >= mailbox.daily_cap:
        return Blocked.MAILBOX_CAP
    # One email per gap: the next may only be planned once this one has gone out.
    gap_end = gap_ends_at(mailbox)
    if mailbox.min_gap_seconds and (planned_now or (gap_end is not None and gap_end > now)):
        return Blocked.MAILBOX_GAP
    return ""


@dataclass
class _Room:
    """What the caps and gaps still allow in this plan."""

    campaign_used: Counter[int] = field(default_factory=Counter)
    mailbox_used: Counter[int] = field(default_factory=Counter)
    mailbox_sent: defaultdict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    planned_now: Counter[int] = field(default_factory=Counter)
    campaign_caps: dict[int, int] = field(default_factory=dict)  # each campaign's cap, by campaign_daily_cap
    held_domains: set[str] = field(default_factory=set)  # sending domains failing SPF or DMARC, not overridden

    def campaign_left(self, campaign: Campaign) -> int:
        return self.campaign_caps[campaign.pk] - self.campaign_used[campaign.pk]

    def mailbox_state(self, mailbox: Mailbox, campaign: Campaign, now: datetime) -> str:
        """"" when the mailbox can take one more email for ``campaign`` now, else the blocked reason
        (its domain, disconnected, cap, then pace, then gap)."""
        if mailbox.sending_domain in self.held_domains:
            return Blocked.DOMAIN_NOT_AUTHENTICATED
        reason = mailbox_wait(mailbox, used=self.mailbox_used[mailbox.pk], now=now,
                              planned_now=self.planned_now[mailbox.pk])
        if reason in (Blocked.MAILBOX_CAP, Blocked.MAILBOX_DISCONNECTED):
            return reason
        return mailbox_pace_wait(mailbox, campaign, sent=self.mailbox_sent[mailbox.pk], now=now) or reason

    def take(self, campaign: Campaign, mailbox: Mailbox, now: datetime) -> None:
        self.campaign_used[campaign.pk] += 1
        self.mailbox_used[mailbox.pk] += 1
        insort(self.mailbox_sent[mailbox.pk], now)  # kept in order for mailbox_pace_wait
        self.planned_now[mailbox.pk] += 1


def _choose_mailbox(lead: Lead, campaign: Campaign, room: _Room, now: datetime) -> tuple[Mailbox | None, str]:
    mailboxes = {m.pk: m for m in campaign.mailboxes.all()}  # prefetched: active ones only
    if lead.mailbox_id:
        # A lead keeps the mailbox of its first email, so the thread stays in one inbox.
        sticky = mailboxes.get(lead.mailbox_id) or (lead.mailbox if lead.mailbox and lead.mailbox.is_active else None)
        if sticky is None:
            return None, Blocked.NO_MAILBOX
        reason = room.mailbox_state(sticky, campaign, now)
        return (None, reason) if reason else (sticky, "")
    if not mailboxes:
        return None, Blocked.NO_MAILBOX
    reasons = {}
    for mailbox in mailboxes.values():
        reasons[mailbox.pk] = room.mailbox_state(mailbox, campaign, now)
    open_ones = [m for m in mailboxes.values() if not reasons[m.pk]]
    if not open_ones:
        # The reason that clears soonest: a gap within minutes, the pace within the hour, a cap within a
        # day; a disconnected mailbox or a failing domain only when a person puts it right.
        return None, next(reason for reason in (Blocked.MAILBOX_GAP, Blocked.MAILBOX_PACE, Blocked.MAILBOX_CAP,
                                                Blocked.MAILBOX_DISCONNECTED, Blocked.DOMAIN_NOT_AUTHENTICATED)
                          if reason in reasons.values())
    # New leads go to the least used mailbox relative to its cap, so each fills at the same pace.
    return min(open_ones, key=lambda m: (room.mailbox_used[m.pk] / m.daily_cap,
                                         -(m.daily_cap - room.mailbox_used[m.pk]), m.pk)), ""


@transaction.atomic
def outreach_plan(*, now: datetime | None = None, campaign: Campaign | None = None) -> dict[str, int]:
    """Create the OutboundEmail rows for every lead that may be mailed now; mark the others blocked.

    Returns counts: ``due``, ``planned`` and one entry per blocked reason.
    """
    now = now or timezone.now()
    due = Lead.objects.filter(status=Lead.Status.IN_SEQUENCE, next_send_at__lte=now).select_related("mailbox")
    if campaign is not None:
        due = due.filter(campaign=campaign)
    leads = list(due.order_by("next_send_at", "pk")[:PLAN_LIMIT])
    counts: Counter[str] = Counter(due=len(leads), planned=0)
    if not leads:
        return dict(counts)

    campaign_ids = {lead.campaign_id for lead in leads}
    campaigns = {c.pk: c for c in Campaign.objects.filter(pk__in=campaign_ids).prefetch_related(
        Prefetch("mailboxes", queryset=Mailbox.objects.filter(is_active=True)))}
    steps = campaign_steps(campaign_ids)
    suppressed = suppressed_addresses(lead.email for lead in leads)
    room = _Room(campaign_caps={
        pk: campaign_daily_cap(owner, mailbox_caps=[mailbox.daily_cap for mailbox in owner.mailboxes.all()]).cap
        for pk, owner in campaigns.items()})
    for campaign_id, use in cap_use("campaign_id", campaign_ids, now=now).items():
        room.campaign_used[campaign_id] = use.used
    mailbox_ids = {m.pk for c in campaigns.values() for m in c.mailboxes.all()} | {
        lead.mailbox_id for lead in leads if lead.mailbox_id}
    for mailbox_id, times in mailbox_sent_times(mailbox_ids, now=now).items():
        room.mailbox_used[mailbox_id] = len(times)
        room.mailbox_sent[mailbox_id] = times
    room.held_domains = held_domains({m.sending_domain for c in campaigns.values() for m in c.mailboxes.all()} | {
        lead.mailbox.sending_domain for lead in leads if lead.mailbox})
    history: dict[int, list[tuple[str, str]]] = defaultdict(list)  # lead → [(message_id, subject)] in order
    for lead_id, message_id, subject in (OutboundEmail.objects.filter(
            lead_id__in=[lead.pk for lead in leads if lead.current_step], status=OutboundEmail.Status.SENT)
            .order_by("lead_id", "step__position").values_list("lead_id", "message_id", "subject")):
        history[lead_id].append((message_id, subject))

    planned: list[OutboundEmail] = []
    changed: list[Lead] = []
    for lead in leads:
        owner = campaigns[lead.campaign_id]
        step = step_after(steps[owner.pk], lead.current_step)
        reason, mailbox = "", None
        if owner.status not in SENDING_CAMPAIGNS:
            reason = Blocked.CAMPAIGN_PAUSED
        elif step is None:
            reason = Blocked.NO_STEP
        elif lead.email in suppressed:
            reason = Blocked.SUPPRESSED
        elif not window_is_open(owner, now, tz_name=lead.timezone):
            reason = Blocked.OUTSIDE_WINDOW
            # Not due again before the window opens: saves looking at it every cycle.
            lead.next_send_at = next_window_opening(owner, now, tz_name=lead.timezone)
        elif room.campaign_left(owner) <= 0:
            reason = Blocked.CAMPAIGN_CAP
        else:
            mailbox, reason = _choose_mailbox(lead, owner, room, now)
        if not reason:
            assert step is not None  # found, as nothing blocks the lead
            thread = history.get(lead.pk, [])
            url = unsubscribe_url(lead)
            try:
                rendered = render_step(step=step, first_subject=thread[0][1] if thread else "",
                                       context=template_context(lead=lead, campaign=owner, mailbox=mailbox,
                                                                unsubscribe_url=url))
            except TemplateProblem:
                reason = Blocked.TEMPLATE_ERROR
        if reason:
            counts[reason] += 1
            lead.blocked_reason = reason
            changed.append(lead)
            continue
        assert mailbox is not None  # chosen, as nothing blocks the lead
        room.take(owner, mailbox, now)
        planned.append(OutboundEmail(
            lead=lead, step=step, campaign=owner, mailbox=mailbox, to_email=lead.email,
            from_email=mailbox.from_email, subject=rendered.subject, body_text=rendered.body_text,
            body_html=rendered.body_html, message_id=new_message_id(mailbox),
            in_reply_to=thread[-1][0] if thread else "", references=" ".join(mid for mid, _ in thread),
            status=OutboundEmail.Status.PENDING, next_attempt_at=now, provider=mailbox.provider))
        # In flight: not due again until the send has been recorded.
        lead.mailbox, lead.next_send_at, lead.blocked_reason = mailbox, None, ""
        changed.append(lead)
        counts["planned"] += 1

    OutboundEmail.objects.bulk_create(planned, ignore_conflicts=True)
    bulk_update_values(changed, ["blocked_reason", "next_send_at", "mailbox"])
    return dict(counts)
