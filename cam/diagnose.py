"""Why a campaign is not sending, and how each of its steps does: read models for the campaign's page.

``campaign_diagnosis(campaign)`` counts the campaign's leads that are held back right now by their
``Lead.blocked_reason`` (written by the planner, ``cam.outreach.planning``, each time it looks at a
due lead), shows one of each, and says what to do, from the state as it is now and with the
planner's own rules: the caps and gaps through ``cap_use``, ``campaign_daily_cap`` (half the caps while
the campaign is degraded, which it says) and ``mailbox_wait``, the send window
through ``cam.outreach.windows``, the templates through ``render_step``. A reason the state no longer
explains (a window that has opened since, a cap with room again) says the leads go out on the next
cycle. It also says how many leads are due and not held back, how many emails wait to be sent, and
when the next email goes out.

``step_performance(campaign)`` counts, per step, the emails sent and their replies, positive
replies and hard bounces, as the metrics count them (``cam.decisions``).

Both cost a fixed number of queries, however many leads and emails the campaign has: the held-back
leads are counted and their examples picked by one query (a window function partitioned by reason,
over an index that holds just the held-back leads), and the examples read by a second.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, Max, Min, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from cam.decisions import _with_flags  # the metrics' own test of what a reply or a bounce is
from cam.jobs.heartbeat import stale_after
from cam.models import Campaign, Lead, Mailbox, OutboundEmail, RuleDecision, SequenceStep, WorkerHeartbeat
from cam.models.campaigns import first_step, step_after
from cam.models.decisions import percent_text
from cam.outreach.pacing import gap_ends_at, warmup_allowance, warmup_words
from cam.outreach.planning import (
    CAP_WINDOW,
    SENDING_CAMPAIGNS,
    CampaignCap,
    CapUse,
    campaign_daily_cap,
    cap_use,
    mailbox_wait,
)
from cam.outreach.rendering import TemplateProblem, render_step, template_context
from cam.outreach.unsubscribe import unsubscribe_url
from cam.outreach.windows import next_window_opening, window_is_open
from cam.suppressions import suppressed_addresses

Blocked = Lead.BlockedReason
Status = Campaign.Status

# Reasons that clear themselves (time passes, the window opens, a cap has room again): leads held back
# by them still count for "when does the next email go out". The others wait for a person.
WAITING_FOR_TIME = (Blocked.OUTSIDE_WINDOW, Blocked.MAILBOX_CAP, Blocked.MAILBOX_GAP, Blocked.MAILBOX_PACE,
                    Blocked.CAMPAIGN_CAP)
# Emails planned and not yet handed to the provider for good.
QUEUED = (OutboundEmail.Status.PENDING, OutboundEmail.Status.RETRY, OutboundEmail.Status.CLAIMED)
# The emails whose last word explains a send_failed, send_unknown or cancelled lead.
STOPPED_EMAILS = (OutboundEmail.Status.FAILED, OutboundEmail.Status.UNKNOWN, OutboundEmail.Status.CANCELLED)
NEXT_CYCLE = "they go out on the next cycle"
ERROR_SHOWN = 300
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class HeldBack:
    """The leads held back for one reason: how many, one of them, and what to do about it."""

    reason: str
    label: str
    count: int
    example_id: int
    example_email: str
    advice: str
    # The example's email the reason is about (a refused, unknown or cancelled send), for a link to it.
    outbound_id: int | None = None


@dataclass(frozen=True)
class Capacity:
    """Room under one daily cap (the campaign's, or one mailbox's across all its campaigns)."""

    name: str
    used: int
    cap: int
    room_at: datetime | None = None  # when one more email fits again, while the cap is reached
    mailbox_id: int | None = None
    active: bool = True
    gap_until: datetime | None = None  # while the mailbox's minimum gap since its last send runs
    problem: str = ""  # why the mailbox's last batch could not send
    room_words: str = ""  # room_at for people, in the campaign's time zone
    gap_words: str = ""  # gap_until for people
    note: str = ""  # why the cap is what it is, when that is not simply the setting (a degraded campaign)
    pace_words: str = ""  # a warming-up mailbox's allowance today, below its cap ("18 today of 50; …")

    @property
    def percent_used(self) -> int:
        return min(100, round(100 * self.used / self.cap)) if self.cap else 100

    @property
    def full(self) -> bool:
        return self.used >= self.cap


@dataclass(frozen=True)
class Diagnosis:
    """Why one campaign is not sending, at ``now``; times in words are in its time zone, ``zone``."""

    now: datetime
    zone: str
    status: str  # the campaign's status in words, with its reason (the rule that set it, when one did)
    sending: bool
    held_back: list[HeldBack]
    in_sequence: int
    due_now: int  # due and not held back: the next plan takes them
    queued: int  # planned, waiting for a sender
    next_send_at: datetime | None
    next_send: str  # when the next email goes out, or why none will, in words
    next_send_why: str  # what sets that time: a due lead, the send window, a cap's room
    capacity: list[Capacity]
    worker_problem: str = ""
    # While the campaign is degraded: by what, and that it sends at half its caps until resumed or the rule clears.
    degraded: str = ""

    @property
    def held_back_total(self) -> int:
        return sum(row.count for row in self.held_back)

    @property
    def next_send_now(self) -> bool:
        """Whether the next email is due already (the next worker cycle sends it)."""
        return self.next_send_at is not None and self.next_send_at <= self.now


# -- words ---------------------------------------------------------------------------------------------

def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def when_text(at: datetime, *, zone: zoneinfo.ZoneInfo, now: datetime) -> str:
    """A moment for people, in ``zone``: "today 14:05", "tomorrow 09:00", "Mon 09:00" within the week,
    else "3 Mar 09:00" (with the year when it is not this one)."""
    local, today = at.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    clock = local.strftime("%H:%M")
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    if days == -1:
        return f"yesterday {clock}"
    if 1 < days < 7:
        return f"{DAY_NAMES[local.weekday()]} {clock}"
    year = f" {local.year}" if local.year != today.year else ""
    return f"{local.day} {local.strftime('%b')}{year} {clock}"


def days_text(days: Iterable[int]) -> str:
    """ISO weekdays for people: [1, 2, 3, 4, 5] → "Mon–Fri", [1, 3, 5] → "Mon, Wed, Fri"."""
    chosen = sorted(set(days))
    if chosen == list(range(1, 8)):
        return "every day"
    runs: list[list[int]] = []
    for day in chosen:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(DAY_NAMES[run[0] - 1] if len(run) == 1 else
                     f"{DAY_NAMES[run[0] - 1]}–{DAY_NAMES[run[-1] - 1]}" if len(run) > 2 else
                     f"{DAY_NAMES[run[0] - 1]}, {DAY_NAMES[run[-1] - 1]}" for run in runs)


def window_text(campaign: Campaign) -> str:
    """"Mon–Fri 09:00–17:00 Europe/Berlin"."""
    return (f"{days_text(campaign.send_days)} {campaign.send_start_hour:02d}:00–{campaign.send_end_hour:02d}:00 "
            f"{campaign.timezone}")


def gap_text(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{seconds} s"
    return f"{minutes} min" if not rest else f"{minutes} min {rest} s"


def _short(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= ERROR_SHOWN else f"{error[:ERROR_SHOWN - 1]}…"


# -- the state one diagnosis reads ---------------------------------------------------------------------

@dataclass
class _State:
    campaign: Campaign
    now: datetime
    zone: zoneinfo.ZoneInfo
    steps: list[SequenceStep]
    mailboxes: list[Mailbox]  # the campaign's, active or not
    campaign_use: CapUse | None
    mailbox_use: dict[int, CapUse]
    decision: RuleDecision | None
    campaign_cap: CampaignCap
    stopped_emails: dict[int, OutboundEmail] = field(default_factory=dict)  # lead → its last stopped email
    suppressed: dict[str, str] = field(default_factory=dict)

    @property
    def active_mailboxes(self) -> list[Mailbox]:
        return [mailbox for mailbox in self.mailboxes if mailbox.is_active]

    def own_mailbox(self, lead: Lead) -> Mailbox | None:
        """The active mailbox ``lead``'s thread keeps (that of its first email), or None."""
        return lead.mailbox if lead.mailbox is not None and lead.mailbox.is_active else None

    def mailboxes_for(self, lead: Lead) -> list[Mailbox]:
        """The mailboxes that could send ``lead``'s next email: its thread's own, else every active one."""
        own = self.own_mailbox(lead)
        return [own] if own is not None else self.active_mailboxes

    def when(self, at: datetime) -> str:
        return when_text(at, zone=self.zone, now=self.now)

    def used(self, mailbox: Mailbox) -> int:
        use = self.mailbox_use.get(mailbox.pk)
        return use.used if use else 0

    def room_at(self, use: CapUse | None, cap: int) -> datetime | None:
        """When one more email fits under ``cap`` again: once the oldest counted email leaves the
        24-hour count. Exact at the cap; when over it (a cap lowered since), the earliest it can be."""
        if use is None or use.used < cap:
            return None
        return use.oldest + CAP_WINDOW


Advice = Callable[[_State, Lead], tuple[str, int | None]]


def _outside_window(state: _State, lead: Lead) -> tuple[str, int | None]:
    campaign = state.campaign
    if window_is_open(campaign, state.now, tz_name=lead.timezone):
        return f"The send window ({window_text(campaign)}) is open now: {NEXT_CYCLE}.", None
    opens = next_window_opening(campaign, state.now)
    text = f"The campaign sends {window_text(campaign)}; the window opens {state.when(opens)}."
    if lead.timezone and _zone(lead.timezone).key != state.zone.key:
        own = next_window_opening(campaign, state.now, tz_name=lead.timezone)
        text += (f" A lead with its own time zone is mailed in that zone's hours: {lead.email} ({lead.timezone}) "
                 f"from {state.when(own)} {state.zone.key}.")
    return text + " Add days or hours under Settings to send sooner.", None


def _mailbox_cap(state: _State, lead: Lead) -> tuple[str, int | None]:
    own = state.own_mailbox(lead)
    mailboxes = state.mailboxes_for(lead)
    full = [mailbox for mailbox in mailboxes
            if mailbox_wait(mailbox, used=state.used(mailbox), now=state.now) == Blocked.MAILBOX_CAP]
    if not full:
        return f"No mailbox is at its daily cap any more: {NEXT_CYCLE}.", None
    parts = []
    for mailbox in full:
        room = state.room_at(state.mailbox_use.get(mailbox.pk), mailbox.daily_cap)
        parts.append(f"{mailbox.from_email} sent {state.used(mailbox)} of {mailbox.daily_cap} in the last 24 hours"
                     + (f", room again {state.when(room)} {state.zone.key}" if room else ""))
    hint = (f" {lead.email}'s thread keeps the mailbox of its first email." if own is not None else "")
    return ("; ".join(parts) + "." + hint + " Raise the mailbox's daily cap under Mailboxes, or add a mailbox "
            "under Settings (new leads are spread over every mailbox)."), None


def _mailbox_gap(state: _State, lead: Lead) -> tuple[str, int | None]:
    mailboxes = state.mailboxes_for(lead)
    waiting = [(mailbox, gap_end) for mailbox in mailboxes
               if (gap_end := gap_ends_at(mailbox)) is not None and gap_end > state.now]
    advice = (" A mailbox sends one email per gap: shorten the gap under Mailboxes, or add mailboxes under Settings "
              "to send more at once.")
    if not waiting:
        return f"The minimum gap has passed: {NEXT_CYCLE}, one email per mailbox and gap." + advice, None
    parts = [f"{mailbox.from_email} waits {gap_text(mailbox.min_gap_seconds)} between sends, the next from "
             f"{state.when(gap_end)} {state.zone.key}" for mailbox, gap_end in waiting]
    return "; ".join(parts) + "." + advice, None


def _mailbox_disconnected(state: _State, lead: Lead) -> tuple[str, int | None]:
    mailboxes = state.mailboxes_for(lead)
    gone = [mailbox.from_email for mailbox in mailboxes if mailbox.needs_reconnect]
    if not gone:
        return f"Its mailbox is connected again: {NEXT_CYCLE}.", None
    return (f"{', '.join(gone)} must be connected to its provider again (its OAuth2 grant was revoked or expired): "
            f"press Connect on the mailbox under Mailboxes."), None


def _warming_words(mailbox: Mailbox, now: datetime) -> str:
    """The ramp of a mailbox still warming up, for the capacity table; "" once it may send its full cap."""
    today = timezone.localdate(now)  # the ramp's days are the server's, as its day one is (planning)
    if not mailbox.warmup_enabled or warmup_allowance(mailbox, today) >= mailbox.daily_cap:
        return ""
    return f"Warming up: {warmup_words(mailbox, today=today)}."


def _mailbox_pace(state: _State, lead: Lead) -> tuple[str, int | None]:
    mailboxes = state.mailboxes_for(lead)
    today = timezone.localdate(state.now)  # the ramp's days are the server's, as its day one is (planning)
    parts = [f"{mailbox.from_email}: {warmup_words(mailbox, today=today)}" for mailbox in mailboxes]
    return ("; ".join(parts) + (". " if parts else "") + "A mailbox sends today's allowance spread over the send "
            "window's hours left, so the rest follow later today or tomorrow. Add mailboxes under Settings to "
            "send more; the warm-up is set under Mailboxes."), None


def _campaign_cap(state: _State, lead: Lead) -> tuple[str, int | None]:
    limit = state.campaign_cap
    cap = limit.cap
    used = state.campaign_use.used if state.campaign_use else 0
    room = state.room_at(state.campaign_use, cap)
    if room is None:
        return f"The campaign is under its daily cap again ({used} of {cap} in the last 24 hours): {NEXT_CYCLE}.", None
    if limit.halved:
        return (f"The campaign sent {used} of the {cap} a day it may send while degraded (half of {limit.usual}) in "
                f"the last 24 hours; room again {state.when(room)} {state.zone.key}. It sends at its full caps once "
                f"resumed (the Resume button) or once the rule that degraded it clears."), None
    return (f"The campaign sent {used} of its {cap} a day in the last 24 hours; room again {state.when(room)} "
            f"{state.zone.key}. Raise the daily cap under Settings to send more."), None


def _suppressed(state: _State, lead: Lead) -> tuple[str, int | None]:
    why = state.suppressed.get(lead.email)
    if why is None:
        return f"{lead.email} is no longer on the suppression list: {NEXT_CYCLE}.", None
    return (f"{why}, so it is never mailed. Remove the suppression under Suppressions only if the person asked to "
            f"hear from you again; otherwise stop these leads."), None


def _campaign_paused(state: _State, lead: Lead) -> tuple[str, int | None]:
    campaign = state.campaign
    if campaign.status in SENDING_CAMPAIGNS:
        since = f" since {state.when(campaign.status_changed_at)}" if campaign.status_changed_at else ""
        return f"The campaign is {campaign.get_status_display().lower()} again{since}: {NEXT_CYCLE}.", None
    status = status_text(campaign, state.decision, zone=state.zone, now=state.now)
    todo = {
        Status.DRAFT: "Activate it with the Activate button to start sending.",
        Status.PAUSED: ("Look at the sends the rule measured (Outbound emails, Replies) and fix the cause, then "
                        "Resume it." if _set_by(campaign, state.decision) else "Resume it with the Resume button."),
        Status.COMPLETED: "A completed campaign sends nothing more; stop these leads or move them to another "
                          "campaign.",
    }.get(Status(campaign.status), "")
    return f"{status}. {todo}".strip(), None


def _no_mailbox(state: _State, lead: Lead) -> tuple[str, int | None]:
    if lead.mailbox is not None and not lead.mailbox.is_active:
        return (f"{lead.email}'s first email went out from {lead.mailbox.from_email}, which is inactive, and its "
                f"follow-ups keep that mailbox: activate it again under Mailboxes."), None
    if state.active_mailboxes:
        return f"The campaign has an active mailbox now: {NEXT_CYCLE}.", None
    if state.mailboxes:
        names = ", ".join(mailbox.from_email for mailbox in state.mailboxes)
        return (f"None of the campaign's mailboxes is active ({names}): activate one under Mailboxes, or add "
                f"another under Settings."), None
    return "The campaign has no mailbox: add one under Settings.", None


def _no_step(state: _State, lead: Lead) -> tuple[str, int | None]:
    if not state.steps:
        return "The campaign has no steps: write its first email under Sequence.", None
    if step_after(state.steps, lead.current_step) is not None:
        return f"A step follows step {lead.current_step} now: {NEXT_CYCLE}.", None
    # The planner passes over disabled steps: say so when one of them is all that follows.
    skipped = [str(step.position) for step in sorted(state.steps, key=lambda step: step.position)
               if step.position > lead.current_step and not step.is_enabled]
    enabled = [step.position for step in state.steps if step.is_enabled]
    last = f"the last enabled is step {max(enabled)}" if enabled else "every step is disabled"
    disabled = (f"; step{'s' if len(skipped) > 1 else ''} {', '.join(skipped)} after it "
                f"{'are' if len(skipped) > 1 else 'is'} disabled" if skipped else "")
    return (f"{lead.email} has had step {lead.current_step}, and no enabled step follows it ({last}{disabled}): "
            f"add or enable one under Sequence, or stop these leads."), None


def _template_error(state: _State, lead: Lead) -> tuple[str, int | None]:
    step = step_after(state.steps, lead.current_step)
    if step is None:
        return _no_step(state, lead)
    mailbox = lead.mailbox or next(iter(state.active_mailboxes), None)
    # A follow-up goes out as "Re: <the first subject>": its own subject template is not rendered.
    first_subject = "" if step is first_step(state.steps) else "Re: …"
    try:
        render_step(step=step, first_subject=first_subject, context=template_context(
            lead=lead, campaign=state.campaign, mailbox=mailbox, unsubscribe_url=unsubscribe_url(lead)))
    except TemplateProblem as exc:
        return (f"Step {step.position} does not render for {lead.email}: {_short(str(exc))} Fix it under Sequence; "
                f"its preview shows it for any lead."), None
    return f"Step {step.position} renders for {lead.email} now: {NEXT_CYCLE}.", None


def _stopped_email(state: _State, lead: Lead, *, what: str, todo: str) -> tuple[str, int | None]:
    email = state.stopped_emails.get(lead.pk)
    if email is None:
        return f"{what} the email to {lead.email}. {todo}", None
    said = f" ({_short(email.last_error)})" if email.last_error.strip() else ""
    mailbox = f" from {email.mailbox.from_email}" if email.mailbox is not None else ""
    which = f"step {email.step.position}" if email.step else "the answer"
    return f"{what} {which} to {lead.email}{mailbox}{said}. {todo}", email.pk


def _send_failed(state: _State, lead: Lead) -> tuple[str, int | None]:
    return _stopped_email(state, lead, what="The provider refused",
                          todo="Check the mailbox's address, login or API key under Mailboxes, then resend the email "
                               "under Outbound emails.")


def _send_unknown(state: _State, lead: Lead) -> tuple[str, int | None]:
    return _stopped_email(state, lead, what="It is not known whether this went out:",
                          todo="Look for it in the mailbox's Sent folder, then Resend or Cancel it under Outbound "
                               "emails.")


def _cancelled(state: _State, lead: Lead) -> tuple[str, int | None]:
    return _stopped_email(state, lead, what="Staff cancelled",
                          todo="Resend it under Outbound emails to go on with the sequence, or stop the lead.")


def _domain_not_authenticated(state: _State, lead: Lead) -> tuple[str, int | None]:
    # Read from the mailboxes already loaded: the domain's own checks are one click away, on its page.
    mailboxes = state.mailboxes_for(lead)
    domains = ", ".join(sorted({mailbox.sending_domain for mailbox in mailboxes})) or "the mailbox's domain"
    return (f"The sending domain {domains} fails SPF or DMARC, so Gmail and Microsoft would reject the email. "
            f"Setup › Sending domains says which record to add; press Check now once it is published, or override "
            f"the hold there with a reason."), None


ADVICE: dict[str, Advice] = {
    Blocked.OUTSIDE_WINDOW: _outside_window,
    Blocked.MAILBOX_CAP: _mailbox_cap,
    Blocked.MAILBOX_GAP: _mailbox_gap,
    Blocked.MAILBOX_DISCONNECTED: _mailbox_disconnected,
    Blocked.MAILBOX_PACE: _mailbox_pace,
    Blocked.CAMPAIGN_CAP: _campaign_cap,
    Blocked.SUPPRESSED: _suppressed,
    Blocked.CAMPAIGN_PAUSED: _campaign_paused,
    Blocked.NO_MAILBOX: _no_mailbox,
    Blocked.DOMAIN_NOT_AUTHENTICATED: _domain_not_authenticated,
    Blocked.NO_STEP: _no_step,
    Blocked.TEMPLATE_ERROR: _template_error,
    Blocked.SEND_FAILED: _send_failed,
    Blocked.SEND_UNKNOWN: _send_unknown,
    Blocked.CANCELLED: _cancelled,
}


def _set_by(campaign: Campaign, decision: RuleDecision | None) -> bool:
    """Whether ``decision`` set the campaign's current status (nobody changed it since; a rule's change always
    records its time, so a status without one was set by the decision if by anything recorded)."""
    return (decision is not None and decision.status_after == campaign.status
            and (campaign.status_changed_at is None or decision.created_at >= campaign.status_changed_at))


def status_text(campaign: Campaign, decision: RuleDecision | None, *, zone: zoneinfo.ZoneInfo,
                now: datetime) -> str:
    """"Paused by the rule “Hard-bounce rate above 5 %” at 7.1 % over 100 sends, 4 Mar 10:00",
    "Paused by staff:anna, today 09:12" or "Active since today 09:12: Resumed by staff:anna"."""
    label = campaign.get_status_display()
    if decision is not None and _set_by(campaign, decision):
        rule = decision.rule
        source = f" from {decision.mailbox.from_email}" if decision.mailbox is not None else ""
        comparison = rule.get_comparison_display().removeprefix("is ")
        return (f"{label} by the rule “{decision.get_metric_display()} {comparison} "
                f"{percent_text(decision.threshold)} %” at {percent_text(decision.measured_value)} % over "
                f"{decision.sample_size} sends{source}, {when_text(decision.created_at, zone=zone, now=now)}")
    when = when_text(campaign.status_changed_at, zone=zone, now=now) if campaign.status_changed_at else ""
    reason = campaign.status_reason.strip()
    if reason.lower().startswith(label.lower()):
        # "Paused by staff:anna" says the status already.
        return f"{reason}, {when}" if when else reason
    since = f" since {when}" if when else ""
    return f"{label}{since}: {reason}" if reason else f"{label}{since}"


# -- the diagnosis -------------------------------------------------------------------------------------

def _held_back_examples(campaign: Campaign) -> list[Lead]:
    """One lead per blocked reason (the one due longest), carrying ``_held``: how many share its reason.

    Two queries: a window function counts each reason's leads and ranks them, reading only the partial
    index ``lead_held_back_idx`` (SQLite and PostgreSQL both run it; no DISTINCT ON needed); then the few
    leads it picked, whole."""
    by_reason = [F("blocked_reason")]
    held = dict(Lead.objects.filter(campaign=campaign, status=Lead.Status.IN_SEQUENCE).exclude(blocked_reason="")
                .annotate(_held=Window(Count("pk"), partition_by=by_reason),
                          _rank=Window(RowNumber(), partition_by=by_reason,
                                       order_by=[F("next_send_at").asc(nulls_last=True), F("pk").asc()]))
                .filter(_rank=1).order_by().values_list("pk", "_held"))
    examples = list(Lead.objects.filter(pk__in=held).select_related("mailbox").order_by())
    for lead in examples:
        lead._held = held[lead.pk]  # type: ignore[attr-defined]  # read by campaign_diagnosis
    return examples


def _next_send(state: _State, *, earliest_by_zone: dict[str, datetime], queued: int, queued_at: datetime | None,
               capacity: Sequence[Capacity], held_back: int) -> tuple[datetime | None, str, str]:
    """When the next email goes out, in words, and what sets that time: a queued email as soon as a
    sender takes it, else the earliest lead waiting only for time, moved past any full cap and into
    the send window (in the lead's own time zone when it has one)."""
    campaign = state.campaign
    if campaign.status not in SENDING_CAMPAIGNS:
        return None, f"Nothing goes out while the campaign is {campaign.get_status_display().lower()}.", ""
    # (when, why then) for each way the next email can come.
    candidates = [(max(queued_at or state.now, state.now), "Planned emails wait for a sender.")] if queued else []
    mailboxes = [row for row in capacity if row.mailbox_id is not None and row.active]
    if mailboxes and earliest_by_zone:
        not_before, full = state.now, ""
        if capacity[0].room_at is not None:  # the campaign's own cap
            not_before, full = max(not_before, capacity[0].room_at), "the campaign's daily cap"
        if all(row.full for row in mailboxes):
            room = min(row.room_at or state.now for row in mailboxes)
            if room > not_before:
                not_before, full = room, "a mailbox's daily cap"
        for tz_name, earliest in earliest_by_zone.items():
            due = max(earliest, state.now)
            ready = max(due, not_before)
            at = next_window_opening(campaign, ready, tz_name=tz_name)
            # The planner already moved a lead held outside the window to its opening: that is the window too.
            opens = not window_is_open(campaign, at - timedelta(minutes=1), tz_name=tz_name)
            why = ("A lead is due now." if at <= state.now else "When the send window opens." if opens
                   else f"When {full} has room again." if ready > due
                   else "When the earliest lead's next step is due.")
            candidates.append((at, why))
    if not candidates:
        if not mailboxes and (earliest_by_zone or held_back):
            return None, "No email can go out: the campaign has no active mailbox.", ""
        if held_back:
            return None, "None until the leads held back are seen to.", ""
        return None, ("No lead is waiting for an email: enrol qualified leads, or add a step for those who had "
                      "them all."), ""
    at, why = min(candidates, key=lambda candidate: candidate[0])
    if at <= state.now:
        return at, "Now: the next worker cycle sends it.", why
    return at, f"{state.when(at)} {state.zone.key}", why


def campaign_diagnosis(campaign: Campaign, now: datetime | None = None) -> Diagnosis:
    """How many of ``campaign``'s leads are held back now and why, what to do about each reason, and
    when its next email goes out. A fixed number of queries (about ten), whatever the number of leads."""
    now = now or timezone.now()
    zone = _zone(campaign.timezone)
    examples = _held_back_examples(campaign)
    in_sequence, due_now, earliest_by_zone = 0, 0, {}
    # Grouped by the leads' own time zones (a handful): each group's earliest lead opens its own window.
    waiting_for_time = Q(blocked_reason__in=["", *WAITING_FOR_TIME])
    for row in (Lead.objects.filter(campaign=campaign, status=Lead.Status.IN_SEQUENCE).order_by().values("timezone")
                .annotate(n=Count("pk"), due=Count("pk", filter=Q(blocked_reason="", next_send_at__lte=now)),
                          earliest=Min("next_send_at", filter=waiting_for_time))):
        in_sequence += row["n"]
        due_now += row["due"]
        if row["earliest"] is not None:
            earliest_by_zone[row["timezone"]] = row["earliest"]
    queued = OutboundEmail.objects.filter(campaign=campaign, status__in=QUEUED).aggregate(
        n=Count("pk"), at=Min("next_attempt_at"))
    mailboxes = list(campaign.mailboxes.all())
    limit = campaign_daily_cap(campaign, mailbox_caps=[mailbox.daily_cap for mailbox in mailboxes if mailbox.is_active])
    counted_mailboxes = {mailbox.pk for mailbox in mailboxes} | {
        lead.mailbox_id for lead in examples if lead.mailbox_id}
    state = _State(
        campaign=campaign, now=now, zone=zone, steps=list(SequenceStep.objects.filter(campaign=campaign)),
        mailboxes=mailboxes, campaign_use=cap_use("campaign_id", [campaign.pk], now=now).get(campaign.pk),
        mailbox_use=cap_use("mailbox_id", counted_mailboxes, now=now),
        decision=(RuleDecision.objects.filter(campaign=campaign).select_related("rule", "mailbox")
                  .order_by("-created_at", "-pk").first()
                  if campaign.status in (Status.PAUSED, Status.DEGRADED) else None),
        campaign_cap=limit)
    # What the examples' advice needs beyond that, each in one query, and only when a reason asks.
    reasons = {lead.blocked_reason: lead for lead in examples}
    stopped = [lead.pk for reason, lead in reasons.items()
               if reason in (Blocked.SEND_FAILED, Blocked.SEND_UNKNOWN, Blocked.CANCELLED)]
    if stopped:
        for email in (OutboundEmail.objects.filter(lead_id__in=stopped, status__in=STOPPED_EMAILS)
                      .select_related("step", "mailbox").order_by("lead_id", "-updated_at", "-pk")):
            state.stopped_emails.setdefault(email.lead_id, email)
    if Blocked.SUPPRESSED in reasons:
        state.suppressed = suppressed_addresses([reasons[Blocked.SUPPRESSED].email])

    held_back = []
    for lead in examples:
        advice, outbound_id = ADVICE[lead.blocked_reason](state, lead)
        held_back.append(HeldBack(reason=lead.blocked_reason, label=Blocked(lead.blocked_reason).label,
                                  count=lead._held,  # type: ignore[attr-defined]  # set by _held_back_examples
                                  example_id=lead.pk, example_email=lead.email, advice=advice,
                                  outbound_id=outbound_id))
    order = list(Blocked)
    held_back.sort(key=lambda row: (-row.count, order.index(Blocked(row.reason))))

    def words(at: datetime | None) -> str:
        return when_text(at, zone=zone, now=now) if at is not None else ""

    campaign_room = state.room_at(state.campaign_use, limit.cap)
    capacity = [Capacity(name="Campaign", used=state.campaign_use.used if state.campaign_use else 0,
                         cap=limit.cap, room_at=campaign_room, room_words=words(campaign_room),
                         note=f"Degraded: half of {limit.usual:,} a day until resumed or the rule clears."
                         if limit.halved else "")]
    for mailbox in mailboxes:
        gap_end = gap_ends_at(mailbox)
        gap_until = gap_end if gap_end is not None and gap_end > now else None
        room = state.room_at(state.mailbox_use.get(mailbox.pk), mailbox.daily_cap)
        capacity.append(Capacity(
            name=f"{mailbox.name} <{mailbox.from_email}>", mailbox_id=mailbox.pk, active=mailbox.is_active,
            used=state.used(mailbox), cap=mailbox.daily_cap, room_at=room, room_words=words(room),
            gap_until=gap_until, gap_words=words(gap_until),
            problem=_short(mailbox.last_send_error) if mailbox.last_send_error.strip() else "",
            pace_words=_warming_words(mailbox, now)))
    next_at, next_words, next_why = _next_send(
        state, earliest_by_zone=earliest_by_zone, queued=queued["n"], queued_at=queued["at"], capacity=capacity,
        held_back=sum(row.count for row in held_back))
    status = status_text(campaign, state.decision, zone=zone, now=now)
    return Diagnosis(now=now, zone=zone.key, status=status,
                     degraded=f"{status}: {limit.words()}." if limit.halved else "",
                     sending=campaign.status in SENDING_CAMPAIGNS, held_back=held_back, in_sequence=in_sequence,
                     due_now=due_now, queued=queued["n"], next_send_at=next_at, next_send=next_words,
                     next_send_why=next_why, capacity=capacity, worker_problem=_worker_problem(zone=zone, now=now))


def _worker_problem(*, zone: zoneinfo.ZoneInfo, now: datetime) -> str:
    """Nothing is planned or sent without a worker: say so when none has been seen lately."""
    seen = WorkerHeartbeat.objects.aggregate(seen=Max("last_seen_at"))["seen"]
    if seen is None:
        return ("No worker has run yet: nothing is planned or sent until one does (manage.py cam_worker, or the task "
                "cluster).")
    if now - seen > stale_after():
        return (f"No worker has been seen since {when_text(seen, zone=zone, now=now)} {zone.key}: nothing is planned "
                f"or sent until one runs again.")
    return ""


# -- per-step performance ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepFigures:
    """One step's sent emails and what came back, counted per email as the metrics count them."""

    step_id: int
    position: int
    subject: str
    sent: int
    replies: int
    positive: int
    bounced: int  # hard bounces
    enabled: bool = True  # a disabled step sends nothing more; what it sent still counts

    def _rate(self, count: int) -> float | None:
        return round(100 * count / self.sent, 1) if self.sent else None

    @property
    def reply_rate(self) -> float | None:
        return self._rate(self.replies)

    @property
    def positive_rate(self) -> float | None:
        return self._rate(self.positive)

    @property
    def bounce_rate(self) -> float | None:
        return self._rate(self.bounced)


def step_performance(campaign: Campaign) -> list[StepFigures]:
    """Every step of ``campaign`` in order, with its sent emails, replies, positive replies and hard
    bounces (a step that sent nothing yet shows zeros). Two queries: the steps, and one grouped count."""
    steps = list(SequenceStep.objects.filter(campaign=campaign).order_by("position")
                 .values_list("pk", "position", "subject_template", "is_enabled"))
    # Annotation names of their own: "replies" is already the name of an email's inbound replies.
    counts = {step_id: (sent, replies, positive, bounced) for step_id, sent, replies, positive, bounced in (
        _with_flags(OutboundEmail.objects.filter(campaign=campaign, status=OutboundEmail.Status.SENT))
        .order_by().values("step_id")
        .annotate(n_sent=Count("pk"), n_replies=Count("pk", filter=Q(_reply=True)),
                  n_positive=Count("pk", filter=Q(_positive=True)), n_bounced=Count("pk", filter=Q(_hard=True)))
        .values_list("step_id", "n_sent", "n_replies", "n_positive", "n_bounced"))}
    figures = []
    for step_id, position, subject, enabled in steps:
        sent, replies, positive, bounced = counts.get(step_id, (0, 0, 0, 0))
        figures.append(StepFigures(step_id=step_id, position=position, subject=subject, sent=sent, replies=replies,
                                   positive=positive, bounced=bounced, enabled=enabled))
    return figures


def step_totals(figures: Iterable[StepFigures]) -> StepFigures:
    """The campaign's figures over all its steps (a row for the foot of the table)."""
    rows = list(figures)
    return StepFigures(step_id=0, position=0, subject="All steps", sent=sum(row.sent for row in rows),
                       replies=sum(row.replies for row in rows), positive=sum(row.positive for row in rows),
                       bounced=sum(row.bounced for row in rows))

