"""What a classified reply, or a silence, does to a lead.

One handler per category (a table, not a chain of ifs). Every change follows the rules of ``cam.leads``
(recorded by ``cam.lead_changes``, which writes a batch's changes together), so it is recorded as a
``LeadEvent`` with who or what made it and why; a lead whose sequence stops has its waiting emails
cancelled. Warm replies queue an alert to a person, once per reply.

Each handler respects the status the reply found the lead in. A lead in its sequence or not yet in
one (``cam.leads.OPEN_STATUSES``) gets the whole follow-up. A closed lead (``CLOSED_STATUSES``) is not
reopened or moved sideways: a reply never pauses it or puts it back into a sequence, a negative or
neutral reply leaves it, and a soft bounce is not retried. The exceptions: an unsubscribe, a complaint
or a hard bounce still suppresses the address and stops everything (a won lead keeps ``WON`` all the
same, see ``cam.leads.KEPT_THROUGH_ADDRESS_STOPS``); a warm reply (positive, question,
referral) brings a lead closed without a conversation or a sale (``REKINDLED_BY_WARM_REPLY``: not
interested, nurture, dead) back as ``INTERESTED`` / ``REFERRED`` — the person changed their mind —
and always alerts a person, while the lead of a conversation or a sale (interested, referred, meeting
booked, won, lost) keeps its status. A lead in a final status (``FINAL_STATUSES``: unsubscribed or bounced) stays
in it whatever the reply says — only an unsubscribe or complaint still moves a bounced lead to
``UNSUBSCRIBED``. The reply keeps its category, and a lead event records that the lead stayed.

A bounce or complaint reaches this module only once it proved it is about an email we sent, or a
person confirmed it (``cam.inbox.processing``): a forged one changes nothing by itself.

A reclassification corrects the reply's own follow-up: when the lead's status was set by this same
reply, the new category is applied to the status the reply found, so a misread reply on a closed lead
leaves it where it was.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.urls import reverse
from django.utils import timezone

from cam.addresses import address_spellings
from cam.alerts.service import AlertRequest, alerts_queue
from cam.lead_changes import LeadChanges
from cam.leads import (
    COMPLAINED,
    FINAL_STATUSES,
    HARD_BOUNCED,
    OPEN_STATUSES,
    UNSUBSCRIBED,
    lead_events_record,
)
from cam.models import Campaign, HumanAlertLog, InboundEmail, Lead, LeadEvent, OutboundEmail

Category = InboundEmail.Category
Status = Lead.Status
AlertType = HumanAlertLog.AlertType

# Replies written by a person (as opposed to machines answering for them).
HUMAN = (Category.POSITIVE, Category.NEGATIVE, Category.UNSUBSCRIBE, Category.REFERRAL, Category.QUESTION,
         Category.NEUTRAL)
SOFT_BOUNCE_RETRY = timedelta(hours=24)

# Leads being mailed: only these are paused by an absence, or have a soft-bounced email retried.
IN_SEQUENCE_STATUSES = (Status.IN_SEQUENCE, Status.PAUSED)
# Closed without a conversation or a sale (a reply's "no", or silence): a warm reply reopens the
# conversation — the person changed their mind. Interested, referred, meeting-booked, won and lost leads
# keep theirs.
REKINDLED_BY_WARM_REPLY = (Status.NOT_INTERESTED, Status.NURTURE, Status.DEAD)
WARM_FROM = (*OPEN_STATUSES, *REKINDLED_BY_WARM_REPLY)


@dataclass(frozen=True)
class Reply:
    inbound: InboundEmail
    lead: Lead
    outbound: OutboundEmail | None
    actor: str
    # The lead's status when the reply came: its status now, unless this same reply's earlier
    # follow-up (before a reclassification) set it.
    found: str
    # Where its changes and alerts are recorded, written with those of its group (``replies_follow_up``).
    changes: LeadChanges
    alerts: list[AlertRequest] = field(default_factory=list)

    @property
    def quote(self) -> str:
        text = " ".join(self.inbound.new_text.split())
        return f"“{text[:140]}{'…' if len(text) > 140 else ''}”" if text else "(no text)"

    @property
    def source(self) -> str:
        # A bounce or complaint a person confirmed (it proved nothing by itself) says who, in the
        # suppression's source too.
        confirmed = (f", confirmed by {self.inbound.confirmation_by}"
                     if self.inbound.confirmation == InboundEmail.Confirmation.CONFIRMED else "")
        return f"reply #{self.inbound.pk}{confirmed}"


def _admin_link(inbound: InboundEmail) -> str:
    # The reply's conversation on the reply desk: where a person reads the thread and answers it.
    return settings.AICMO_CAM_PUBLIC_URL + reverse("admin:cam_reply_thread", args=[inbound.pk])


def _alert(reply: Reply, alert_type: str, title: str) -> None:
    """Queue the alert (sent by the alert step of the same cycle) and mark the reply as alerted, with
    the reply's group."""
    lead = reply.lead
    body = (f"{lead.full_name or lead.email} <{lead.email}> at {lead.company or '—'} ({lead.campaign}) wrote:\n\n"
            f"{reply.inbound.new_text.strip()}\n\nOpen it: {_admin_link(reply.inbound)}")
    reply.alerts.append(AlertRequest(alert_type=alert_type, title=title, body=body,
                                     idempotency_key=f"reply:{reply.inbound.pk}", campaign=reply.lead.campaign,
                                     lead=reply.lead, inbound_email=reply.inbound))
    reply.inbound.alert_sent = True


def _set(reply: Reply, status: str, reason: str, **options: Any) -> None:
    reply.changes.set_status(lead=reply.lead, to_status=status, actor=reply.actor, reason=reason,
                             inbound_email=reply.inbound, **options)


def _reopened_by_this_reply(reply: Reply) -> bool:
    """Whether this reply's earlier follow-up moved the lead out of the closed status it found it in."""
    return (reply.lead.status != reply.found and reply.found not in OPEN_STATUSES
            and reply.found not in FINAL_STATUSES)


def _stay(reply: Reply, *, reason: str, to_status: str = "", why: str = "") -> None:
    """The lead stays in the status the reply found it in, and its history says so.

    When this reply's earlier follow-up had moved a closed lead (a warm reply reopening it, since
    reclassified), the lead goes back to that closed status."""
    lead, found = reply.lead, reply.found
    if _reopened_by_this_reply(reply):
        _set(reply, found, f"{reason} — back to {found}, the closed status the lead had when this reply came, "
                           f"which a reply does not reopen or change")
        return
    reply.changes.status_kept(lead=lead, status=lead.status, to_status="" if to_status == lead.status else to_status,
                              actor=reply.actor, reason=reason, inbound_email=reply.inbound, why=why)


def _move(reply: Reply, status: str, reason: str, *, allowed: tuple[str, ...], **options: Any) -> None:
    """Move the lead to ``status`` when the reply found it in one of ``allowed``; otherwise it stays."""
    if reply.found in allowed:
        _set(reply, status, reason, **options)
    else:
        _stay(reply, reason=reason, to_status=status)


def _positive(reply: Reply) -> None:
    _move(reply, Status.INTERESTED, f"Positive reply: {reply.quote}", allowed=WARM_FROM)
    _alert(reply, AlertType.POSITIVE_REPLY, f"Interested: {reply.lead.full_name or reply.lead.email}")


def _question(reply: Reply) -> None:
    # A question is a conversation a person should take over: the sequence stops and someone is told.
    _move(reply, Status.INTERESTED, f"Asked a question: {reply.quote}", allowed=WARM_FROM)
    _alert(reply, AlertType.POSITIVE_REPLY, f"Question from {reply.lead.full_name or reply.lead.email}")


def _negative(reply: Reply) -> None:
    _move(reply, Status.NOT_INTERESTED, f"Not interested: {reply.quote}", allowed=OPEN_STATUSES)


def _neutral(reply: Reply) -> None:
    _move(reply, Status.NURTURE, f"Replied without a clear answer: {reply.quote}", allowed=OPEN_STATUSES)


def _referral(reply: Reply) -> None:
    to = reply.inbound.referral_email
    _move(reply, Status.REFERRED, f"Referred us to {to or 'someone else'}: {reply.quote}", allowed=WARM_FROM)
    _alert(reply, AlertType.REFERRAL, f"Referral from {reply.lead.full_name or reply.lead.email}"
                                      f"{f' to {to}' if to else ''}")


# The address stops of ``cam.leads`` (``lead_unsubscribe``, ``lead_mark_complained``, ``lead_mark_bounced``).
def _unsubscribe(reply: Reply) -> None:
    reply.changes.address_stop(lead=reply.lead, kind=UNSUBSCRIBED, source=f"asked by email, {reply.source}",
                               actor=reply.actor, inbound_email=reply.inbound)


def _complaint(reply: Reply) -> None:
    reply.changes.address_stop(lead=reply.lead, kind=COMPLAINED, source=f"feedback report, {reply.source}",
                               actor=reply.actor, inbound_email=reply.inbound)


def _bounce_hard(reply: Reply) -> None:
    reply.changes.address_stop(lead=reply.lead, kind=HARD_BOUNCED, actor=reply.actor, inbound_email=reply.inbound,
                               source=f"bounce {reply.inbound.bounce_status_code or ''}, {reply.source}")


def _bounce_soft(reply: Reply) -> None:
    outbound = reply.outbound
    campaign = reply.lead.campaign
    if outbound is None:
        return
    if reply.lead.status not in IN_SEQUENCE_STATUSES or outbound.step is None:
        # Only a lead still being mailed gets the email again; nothing else is retried (nor is a
        # person's answer: they see the bounce and decide).
        _stay(reply, reason=f"Soft bounce, not retried ({reply.source})",
              why="" if reply.lead.status in FINAL_STATUSES or reply.found not in OPEN_STATUSES
              else "not in a sequence, so nothing is sent to it again")
        return
    # The email's row is written now (one statement: soft bounces are few); the lead's with its group.
    soft = outbound.soft_bounces + 1
    if soft >= campaign.soft_bounce_limit:
        OutboundEmail.objects.filter(pk=outbound.pk).update(soft_bounces=soft, updated_at=timezone.now())
        reply.changes.address_stop(lead=reply.lead, kind=HARD_BOUNCED, actor=reply.actor, inbound_email=reply.inbound,
                                   source=f"{soft} soft bounces of one email, {reply.source}")
        return
    # The same step goes out again later, as the same email (same Message-ID, same content).
    now = timezone.now()
    OutboundEmail.objects.filter(pk=outbound.pk).update(
        soft_bounces=soft, status=OutboundEmail.Status.RETRY, next_attempt_at=now + SOFT_BOUNCE_RETRY,
        updated_at=now, last_error=f"Soft bounce {soft} of {campaign.soft_bounce_limit} "
                                   f"({reply.inbound.bounce_status_code or 'no code'}); retried later.")
    lead = reply.lead
    if lead.current_step == outbound.step.position:
        lead.current_step, lead.next_send_at, lead.updated_at = outbound.step.position - 1, None, now
        reply.changes.touch(lead)


def _out_of_office(reply: Reply) -> None:
    if reply.found not in IN_SEQUENCE_STATUSES:
        # Pausing would put the lead into a sequence when the pause ends: only a lead in one is paused.
        _stay(reply, reason=f"Out of office: {reply.quote}", to_status=Status.PAUSED,
              why="" if reply.found not in OPEN_STATUSES else "not in a sequence, so there is nothing to pause")
        return
    back = reply.inbound.return_date
    campaign = reply.lead.campaign
    # Back in the morning of the return day, in the lead's (or the campaign's) time zone.
    zone = zoneinfo.ZoneInfo(reply.lead.timezone or campaign.timezone or "UTC")
    until = (datetime.combine(back, time(9), tzinfo=zone) if back
             else timezone.now() + timedelta(days=campaign.out_of_office_days))
    # Waiting emails stay queued: the sender only sends to leads in sequence, so they go out after.
    _set(reply, Status.PAUSED, f"Out of office until {until.date().isoformat()}: {reply.quote}",
         stop_sequence=False, paused_until=until)


def _automatic(reply: Reply) -> None:
    """An automatic reply that is not an absence changes nothing (but a reclassification to it undoes
    this reply's reopening of a closed lead)."""
    if _reopened_by_this_reply(reply):
        _stay(reply, reason=f"Automatic reply: {reply.quote}")


FOLLOW_UPS: dict[str, Callable[[Reply], None]] = {
    Category.POSITIVE: _positive,
    Category.QUESTION: _question,
    Category.NEGATIVE: _negative,
    Category.NEUTRAL: _neutral,
    Category.REFERRAL: _referral,
    Category.UNSUBSCRIBE: _unsubscribe,
    Category.COMPLAINT: _complaint,
    Category.BOUNCE_HARD: _bounce_hard,
    Category.BOUNCE_SOFT: _bounce_soft,
    Category.OUT_OF_OFFICE: _out_of_office,
    Category.AUTO_REPLY: _automatic,
    # About the sending domain's SPF, DKIM or DMARC, not about the lead: counted per domain, changes no lead.
    Category.AUTH_FAILURE: _automatic,
}


# Replies that may stop their address (a soft bounce at its limit does), reaching the address's leads
# in other campaigns and its emails.
ADDRESS_STOPS = (Category.UNSUBSCRIBE, Category.COMPLAINT, Category.BOUNCE_HARD, Category.BOUNCE_SOFT)


def reply_follow_up(*, inbound: InboundEmail, actor: str, reclassified: bool = False) -> None:
    """Apply what ``inbound``'s category means to its lead (nothing when it matched no lead):
    ``replies_follow_up`` for one reply.

    ``reclassified``: the reply was followed up before under another category, whose changes to the
    lead the new category replaces (see ``_status_found``); a first follow-up has none to look past."""
    replies_follow_up(inbounds=[inbound], actor=actor, reclassified=reclassified)


@transaction.atomic
def replies_follow_up(*, inbounds: list[InboundEmail], actor: str, reclassified: bool = False) -> None:
    """Apply each reply's follow-up, in their order, as ``reply_follow_up`` would one after the other,
    in a few statements per group of replies rather than a dozen per reply.

    The replies' leads are locked in one query (in id order, so two batches do not wait on each other
    crosswise), each reply's changes are decided in memory (``cam.lead_changes``), and a group's are
    written together. A group ends where a reply could see or undo what an earlier one of the group
    did (``_independent``: the same lead, or an address or company one of them stops); the next group
    reads its leads again after the first is written. Raises what any reply's follow-up raises: the
    caller decides what to undo (``cam.inbox.processing`` then follows them up one by one)."""
    due = [inbound for inbound in inbounds if inbound.lead_id is not None and inbound.category]
    if not due:
        return
    leads = _locked({inbound.lead_id for inbound in due if inbound.lead_id is not None})
    for number, group in enumerate(_independent(due, leads)):
        if number:  # an earlier group may have changed them: read and lock them again
            leads.update(_locked({inbound.lead_id for inbound in group if inbound.lead_id is not None}))
        _follow_up_group(group, leads, actor=actor, reclassified=reclassified)


def _locked(lead_ids: set[int]) -> dict[int, Lead]:
    # Locked, so the status decided on is the one changed (a person or another reply waits).
    return {lead.pk: lead for lead in Lead.objects.select_for_update(of=("self",)).select_related("campaign")
            .filter(pk__in=lead_ids).order_by("pk")}


def _lead_of(inbound: InboundEmail, leads: dict[int, Lead]) -> Lead:
    lead = leads.get(inbound.lead_id or 0)
    if lead is None:
        raise Lead.DoesNotExist(f"Reply #{inbound.pk}'s lead #{inbound.lead_id} does not exist.")
    return lead


def _independent(due: list[InboundEmail], leads: dict[int, Lead]) -> list[list[InboundEmail]]:
    """``due`` cut, in order, into groups whose replies do not reach one another's leads: within a group no
    two replies are about the same lead, and none stops an address or a company (``_reach``) another one's
    lead has, so writing a group's changes together does what writing them in order would."""
    groups: list[list[InboundEmail]] = []
    exclusive: set[tuple[str, object]] = set()
    shared: set[tuple[str, object]] = set()
    for inbound in due:
        alone, along = _reach(inbound, _lead_of(inbound, leads))
        if groups and not (alone & (exclusive | shared) or along & exclusive):
            groups[-1].append(inbound)
        else:
            groups.append([inbound])
            exclusive, shared = set(), set()
        exclusive |= alone
        shared |= along
    return groups


def _reach(inbound: InboundEmail, lead: Lead) -> tuple[set[tuple[str, object]], set[tuple[str, object]]]:
    """What a reply's follow-up may change beyond what it reads: its lead, always; its lead's address (every
    spelling) when it may stop it; its lead's company when it may stop it. The second set is what it only
    reads or changes of its own lead: the address and the company its lead has, which another reply's
    stop would change under it."""
    spellings = address_spellings(lead.email)
    addresses: set[tuple[str, object]] = {("address", spelling) for spelling in spellings}
    domains: set[tuple[str, object]] = {("domain", spelling.rpartition("@")[2]) for spelling in spellings}
    domains.add(("domain", lead.email_domain))
    alone: set[tuple[str, object]] = {("lead", lead.pk)}
    along: set[tuple[str, object]] = set()
    (alone if inbound.category in ADDRESS_STOPS else along).update(addresses)
    (alone if inbound.category in HUMAN and lead.campaign.stop_company_on_reply else along).update(domains)
    return alone, along


def _follow_up_group(group: list[InboundEmail], leads: dict[int, Lead], *, actor: str, reclassified: bool) -> None:
    changes = LeadChanges(now=timezone.now())
    alerts: list[AlertRequest] = []
    outbound_ids = [inbound.outbound_email_id for inbound in group if inbound.outbound_email_id]
    outbounds = ({outbound.pk: outbound for outbound in
                  OutboundEmail.objects.select_related("step").filter(pk__in=outbound_ids)} if outbound_ids else {})
    for inbound in group:
        lead = _lead_of(inbound, leads)
        found = _status_found(lead, inbound) if reclassified else lead.status
        reply = Reply(inbound=inbound, lead=lead, outbound=outbounds.get(inbound.outbound_email_id or 0), actor=actor,
                      found=found, changes=changes, alerts=alerts)
        if inbound.category in HUMAN:
            if lead.replied_at is None:
                lead.replied_at = inbound.received_at or timezone.now()
                changes.touch(lead)
            if lead.campaign.stop_company_on_reply:
                changes.stop_company(lead=lead, actor=actor, inbound_email=inbound,
                                     reason=f"{lead.email} at the same company replied ({reply.source}).")
        FOLLOW_UPS[inbound.category](reply)
    changes.apply()
    if alerts:
        alerts_queue(alerts)
        InboundEmail.objects.filter(pk__in=[alert.inbound_email.pk for alert in alerts
                                            if alert.inbound_email is not None]).update(alert_sent=True)


def _status_found(lead: Lead, inbound: InboundEmail) -> str:
    """The status ``lead`` had when ``inbound`` came: its status now, unless its latest changes were
    made by this same reply's follow-up (it is being reclassified) — then the status before them. A
    final status is never looked past: nothing leaves it."""
    found = lead.status
    if found in FINAL_STATUSES:
        return found
    changes = (LeadEvent.objects.filter(lead_id=lead.pk).exclude(from_status=F("to_status"))
               .order_by("-created_at", "-pk").values_list("from_status", "to_status", "inbound_email_id"))
    for from_status, to_status, inbound_id in changes[:20]:
        if inbound_id != inbound.pk or to_status != found:
            break
        found = from_status
    return found


def leads_resume_paused(*, now: datetime | None = None) -> int:
    """Leads whose out-of-office pause is over go back into their sequence: only leads still
    ``PAUSED`` with a ``paused_until`` that has come (locked, so a lead a person or a reply moves
    meanwhile is not resumed)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = Lead.objects.filter(status=Status.PAUSED, paused_until__isnull=False, paused_until__lte=now)
        found = list(due.select_for_update().values_list("pk", "status"))
        if not found:
            return 0
        lead_events_record(found, to_status=Status.IN_SEQUENCE, actor="system:follow-up",
                           reason="Back from out of office.")
        resumed = due.filter(pk__in=[pk for pk, _ in found]).update(
            status=Status.IN_SEQUENCE, status_reason="Back from out of office.", status_changed_at=now,
            updated_at=now, paused_until=None, next_send_at=now)
    return resumed


def leads_no_reply_timeout(*, now: datetime | None = None) -> dict[str, int]:
    """Leads that got the last step more than the campaign's no-reply days ago, with no reply, move to
    ``NURTURE`` or ``DEAD`` as the campaign says. A few statements whatever the number of campaigns: the
    campaigns are read once, and their leads are found and moved together for each no-reply wait, outcome
    and last step the campaigns have."""
    now = now or timezone.now()
    counts = {"nurture": 0, "dead": 0}
    # The last enabled step: a lead that had it gets nothing more, whatever disabled steps come after.
    campaigns = (Campaign.objects.annotate(last_step=Max("steps__position", filter=Q(steps__is_enabled=True)))
                 .filter(last_step__isnull=False).values_list("pk", "no_reply_days", "no_reply_outcome", "last_step"))
    # Grouped by their last step too, so each lead is compared with a constant: asked of every lead as a
    # subquery, it cost a probe of the steps per in-sequence lead with no next send (280 ms at 99,000 of them).
    groups: dict[tuple[int, str, int], list[int]] = {}
    for campaign_id, days, outcome, last_step in campaigns:
        groups.setdefault((days, outcome, last_step), []).append(campaign_id)
    for (days, outcome, last_step), campaign_ids in sorted(groups.items()):
        silent = Lead.objects.filter(
            campaign_id__in=campaign_ids, status=Status.IN_SEQUENCE, current_step__gte=last_step,
            next_send_at__isnull=True, replied_at__isnull=True,
            last_contacted_at__lte=now - timedelta(days=days)).order_by()
        reason = f"No reply {days} days after the last email."
        with transaction.atomic():
            found = list(silent.values_list("pk", "status"))
            if not found:
                continue
            lead_events_record(found, to_status=outcome, actor="system:no-reply timeout", reason=reason)
            silent.filter(pk__in=[pk for pk, _ in found]).update(
                status=outcome, status_reason=reason, status_changed_at=now, updated_at=now)
        counts[outcome.lower()] += len(found)
    return counts
