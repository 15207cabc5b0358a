"""A lead's status and the changes to it: those that stop mail to an address (unsubscribe, hard bounce,
complaint), those a person makes, and the rules and wording of those the follow-up engine makes for a
reply (``cam.lead_changes`` applies them to a batch of replies) or a silence.

The unsubscribe page, the provider webhook and the reply classifier all call the address stops, so
an address is stopped the same way whichever door the news came through: the lead's status changes
with its reason and time (a won lead keeps ``WON``, see ``KEPT_THROUGH_ADDRESS_STOPS``), the address
goes on the global suppression list, every email still waiting for it is cancelled, and the same
address in other campaigns stops too. Each change is a handful of set-based statements, whatever the
number of leads and emails involved.

A person (in the admin, or an API client) changes a status only through ``lead_change_status``, within
``MANUAL_TRANSITIONS``; the admin saves a lead's profile through ``lead_save_profile``, which keeps the
address once mail went to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cam.addresses import address_spellings
from cam.in_flight import IN_FLIGHT, locked_not_in_flight
from cam.models import InboundEmail, Lead, LeadEvent, OutboundEmail, Suppression
from cam.suppressions import suppressed_addresses

Status = Lead.Status

# Statuses no reply, reclassification or silence moves a lead out of, because the address asked for no
# more mail or takes none. The one way on: a bounced lead may still unsubscribe (``lead_unsubscribe``),
# the person's own request being the more important fact. A person may move a lead out of one only once
# no suppression covers its address any more, and never back into a sequence (``MANUAL_TRANSITIONS``,
# ``lead_change_status``).
FINAL_STATUSES = (Status.UNSUBSCRIBED, Status.BOUNCED)

# A lead in one of these is in its sequence (``IN_SEQUENCE``, or ``PAUSED`` within it) or still waiting
# for the pipeline to decide about one (``NEW``, ``QUALIFIED``, ``DISQUALIFIED``, which qualification
# may re-decide): a reply applies its whole follow-up. Every other status is closed: a conversation a
# person took over, an outcome (a reply's, a silence's or a sale's) or a final status. A reply does not
# reopen a closed lead or move it sideways; ``cam.followup`` says what it still does.
# They are also the leads still waiting to be mailed, or being mailed, so the ones a suppression of
# their address or a colleague's reply stops; closed leads (a reply, a sale, an earlier bounce) keep
# their status, and the suppression alone protects them.
OPEN_STATUSES = (Status.NEW, Status.QUALIFIED, Status.DISQUALIFIED, Status.IN_SEQUENCE, Status.PAUSED)
CLOSED_STATUSES = tuple(status for status in Status if status not in OPEN_STATUSES)

# A sale outlives what later becomes of its address: a customer who unsubscribes from the campaign's
# mail, whose mailbox bounces or who reports a follow-up as spam is still a customer, and the sales
# figures must still count them. The address is suppressed and nothing more is sent, exactly as for
# any other lead; the lead keeps WON, and its history records the news and why it stayed. A booked
# meeting is not a sale: a person who unsubscribes after booking one has said no more, and the lead
# becomes UNSUBSCRIBED like an interested one.
KEPT_THROUGH_ADDRESS_STOPS = (Status.WON,)
WHY_A_SALE_STAYS = ("a sale, which what later becomes of the address does not undo; the address is suppressed, "
                    "so nothing more is sent to it")

# Emails not yet handed to a provider (a CLAIMED row's sender checks its claim before sending); the one
# a sender has in flight is left to it (cam.in_flight.locked_not_in_flight).
CANCELLABLE_EMAIL_STATUSES = (OutboundEmail.Status.PENDING, OutboundEmail.Status.CLAIMED,
                              OutboundEmail.Status.RETRY)


def staff_actor(user: AbstractBaseUser | AnonymousUser) -> str:
    """A person acting in the admin or through the API with a session, as events and reasons name them."""
    return f"staff:{user.get_username()}"


def lead_events_record(leads: list[tuple[int, str]], *, to_status: str, actor: str, reason: str,
                   inbound_email: InboundEmail | None = None) -> None:
    LeadEvent.objects.bulk_create([
        LeadEvent(lead_id=pk, from_status=from_status, to_status=to_status, actor=actor[:200], reason=reason,
                  inbound_email=inbound_email)
        for pk, from_status in leads if from_status != to_status])


def lead_status_kept(*, lead: Lead, status: str, actor: str, reason: str, to_status: str = "",
                     inbound_email: InboundEmail | None = None, why: str = "") -> None:
    """Record that ``lead`` stays in ``status`` although ``reason`` would have moved it (to
    ``to_status``, when given): an event from and to the same status, so the lead's history shows
    the reply or request and why nothing changed. ``why`` explains it; by default, that ``status``
    is final or closed."""
    LeadEvent.objects.create(
        lead_id=lead.pk, from_status=status, to_status=status, actor=actor[:200], inbound_email=inbound_email,
        reason=kept_reason(status=status, reason=reason, to_status=to_status, why=why))


def kept_reason(*, status: str, reason: str, to_status: str = "", why: str = "") -> str:
    """The reason of a ``lead_status_kept`` event (``cam.lead_changes`` writes the same)."""
    if not why:
        why = ("a final status, which nothing moves a lead out of" if status in FINAL_STATUSES
               else "a closed status, which a reply does not reopen or change")
    instead = f" (it would otherwise have become {to_status})" if to_status else ""
    return f"{reason} — the lead stays {status}: {why}{instead}."


@dataclass(frozen=True)
class AddressStop:
    """What one kind of news about an address does: the status its leads take, the statuses a lead keeps
    instead (a won lead; an earlier, weightier stop), "The address …" in the reasons staff read, and the
    suppression's reason. ``cam.lead_changes`` applies the same kinds to a batch of replies."""

    to_status: str
    keep_statuses: tuple[str, ...]
    what_happened: str
    suppression_reason: str

    def own_reason(self, source: str) -> str:
        return f"The address {self.what_happened} ({source})."

    def other_reason(self, source: str, campaign: object) -> str:
        return f"The address {self.what_happened} (campaign “{campaign}”, {source})."

    def cancel_reason(self, source: str) -> str:
        return f"Cancelled before sending: the address {self.what_happened} ({source})."


UNSUBSCRIBED = AddressStop(Status.UNSUBSCRIBED, (Status.UNSUBSCRIBED, *KEPT_THROUGH_ADDRESS_STOPS), "unsubscribed",
                           Suppression.Reason.UNSUBSCRIBED)
COMPLAINED = AddressStop(Status.UNSUBSCRIBED, (Status.UNSUBSCRIBED, *KEPT_THROUGH_ADDRESS_STOPS),
                         "marked our email as spam", Suppression.Reason.COMPLAINT)
# A lead that had already unsubscribed keeps that status: the person's own request is the more important fact.
HARD_BOUNCED = AddressStop(Status.BOUNCED, (Status.BOUNCED, Status.UNSUBSCRIBED, *KEPT_THROUGH_ADDRESS_STOPS),
                           "hard-bounced", Suppression.Reason.HARD_BOUNCE)
# The fields an address stop, a company stop or a status change that stops the sequence clear.
STOPPED = {"next_send_at": None, "blocked_reason": "", "paused_until": None}


def _address_stop(*, lead: Lead, kind: AddressStop, source: str, actor: str = "system",
                  inbound_email: InboundEmail | None = None) -> bool:
    """Stop every email to ``lead.email``; returns whether any row changed. Every status change is
    recorded as a ``LeadEvent``.
    """
    to_status, keep_statuses = kind.to_status, kind.keep_statuses
    now = timezone.now()
    # The address as stored and compared (``cam.addresses``), and the other spellings a lead,
    # an email or a suppression of it may have been stored under.
    spellings = address_spellings(lead.email)
    suppressed = False
    if not Suppression.objects.filter(email__in=spellings).exists():
        _, suppressed = Suppression.objects.get_or_create(
            email=spellings[0], defaults={"reason": kind.suppression_reason, "source": source[:200]})

    stop = {"status": to_status, "status_changed_at": now, "updated_at": now, **STOPPED}
    kept = Lead.objects.filter(pk=lead.pk, status__in=keep_statuses).exclude(status=to_status).values_list(
        "status", flat=True).first()
    own_rows = Lead.objects.filter(pk=lead.pk).exclude(status__in=keep_statuses)
    other_rows = Lead.objects.filter(email__in=spellings, status__in=OPEN_STATUSES).exclude(pk=lead.pk)
    own_reason, other_reason = kind.own_reason(source), kind.other_reason(source, lead.campaign)
    lead_events_record(list(own_rows.values_list("pk", "status")), to_status=to_status, actor=actor, reason=own_reason,
                   inbound_email=inbound_email)
    lead_events_record(list(other_rows.values_list("pk", "status")), to_status=to_status, actor=actor,
                   reason=other_reason, inbound_email=inbound_email)
    if kept:
        # E.g. a bounce for a lead that had unsubscribed, or an unsubscribe from a customer: the lead
        # stays as it was, and the history says so.
        lead_status_kept(lead=lead, status=kept, to_status=to_status, actor=actor, reason=own_reason,
                         inbound_email=inbound_email,
                         why=WHY_A_SALE_STAYS if kept in KEPT_THROUGH_ADDRESS_STOPS else "")
    own = own_rows.update(status_reason=own_reason, **stop)
    others = other_rows.update(status_reason=other_reason, **stop)
    cancelled = emails_cancel(OutboundEmail.objects.filter(Q(lead__email__in=spellings) | Q(to_email__in=spellings)),
                              why=kind.cancel_reason(source), now=now)

    lead.refresh_from_db(fields=["status", "status_reason", "status_changed_at", "next_send_at",
                                 "blocked_reason", "paused_until", "updated_at"])
    return bool(suppressed or own or others or cancelled)


@transaction.atomic
def lead_unsubscribe(*, lead: Lead, source: str, actor: str = "system",
                     inbound_email: InboundEmail | None = None) -> bool:
    """The person behind ``lead`` asked to receive nothing more; ``source`` says how.

    The lead becomes ``UNSUBSCRIBED`` (a won lead stays ``WON``); the address is suppressed (reason
    ``UNSUBSCRIBED``) unless it already was; its pending emails in every campaign are cancelled, and
    its leads in other campaigns that were still to be mailed become ``UNSUBSCRIBED`` too. Calling it
    again changes nothing.
    Returns whether anything changed.
    """
    return _address_stop(lead=lead, kind=UNSUBSCRIBED, source=source, actor=actor, inbound_email=inbound_email)


@transaction.atomic
def lead_mark_complained(*, lead: Lead, source: str, actor: str = "system",
                         inbound_email: InboundEmail | None = None) -> bool:
    """The recipient reported our email as spam: treated as an unsubscribe, suppressed as ``COMPLAINT``.

    Same effects and return value as ``lead_unsubscribe``.
    """
    return _address_stop(lead=lead, kind=COMPLAINED, source=source, actor=actor, inbound_email=inbound_email)


@transaction.atomic
def lead_mark_bounced(*, lead: Lead, source: str, actor: str = "system",
                      inbound_email: InboundEmail | None = None) -> bool:
    """The address does not accept mail (a hard bounce): the lead becomes ``BOUNCED``.

    The address is suppressed as ``HARD_BOUNCE``, its pending emails everywhere are cancelled and
    its leads elsewhere that were still to be mailed become ``BOUNCED``. A lead that had already
    unsubscribed keeps that status (the person's own request is the more important fact), and a won
    lead stays ``WON``. Returns whether anything changed.
    """
    return _address_stop(lead=lead, kind=HARD_BOUNCED, source=source, actor=actor, inbound_email=inbound_email)


# Emails still to go out for a lead whose sequence stops.
def _cancel_pending(*, lead_ids: list[int], why: str, now: datetime) -> int:
    return emails_cancel(OutboundEmail.objects.filter(lead_id__in=lead_ids), why=cancel_reason(why), now=now)


def emails_cancel(emails: QuerySet[OutboundEmail], *, why: str, now: datetime) -> int:
    """Cancel those of ``emails`` still waiting to go out (``last_error`` says ``why``), but not one a sender has in
    flight: it is the sender's to record. Inside a transaction; returns how many were cancelled."""
    waiting = [pk for pk, in locked_not_in_flight(emails.filter(status__in=CANCELLABLE_EMAIL_STATUSES))]
    if not waiting:
        return 0
    return OutboundEmail.objects.filter(pk__in=waiting).update(
        status=OutboundEmail.Status.CANCELLED, next_attempt_at=None, updated_at=now, last_error=why)


def cancel_reason(why: str) -> str:
    """The ``last_error`` of an email cancelled because its lead's sequence stopped ``why``."""
    return f"Cancelled before sending: {why}"


# -- changes made by a person (staff or an API client) --------------------------------------------

# Where a person may move a lead, by its current status. Entering or re-entering a sequence (NEW,
# QUALIFIED, IN_SEQUENCE) and pausing it belong to the pipeline (scoring, qualification, the
# out-of-office handling), which check what a hand-made change would skip. The targets are the outcomes
# the follow-up engine records for a reply or a silence, plus a meeting booked and the sales outcomes
# WON and LOST. A won lead is not moved to UNSUBSCRIBED or BOUNCED (``KEPT_THROUGH_ADDRESS_STOPS``): its
# address is suppressed instead.
# An unsubscribed or bounced lead may be moved to a conversation's outcome (the person wrote back, a
# colleague met them), but only once no suppression covers its address any more (``leads_change_status``
# checks): taking an address off the suppression list is a decision of its own, made and recorded on
# the list, not a side effect of a status change. Even then nothing puts it back into a sequence.
_CONVERSATION = (Status.INTERESTED, Status.REFERRED, Status.MEETING_BOOKED, Status.NOT_INTERESTED, Status.NURTURE,
                 Status.DEAD, Status.WON, Status.LOST)
_ADDRESS_STOPS = (Status.UNSUBSCRIBED, Status.BOUNCED)
MANUAL_TRANSITIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys((Status.NEW, Status.QUALIFIED, Status.DISQUALIFIED),
                    (Status.DISQUALIFIED, Status.DEAD, *_ADDRESS_STOPS)),
    **dict.fromkeys((Status.IN_SEQUENCE, Status.PAUSED), (*_CONVERSATION, *_ADDRESS_STOPS)),
    **dict.fromkeys(_CONVERSATION, (*_CONVERSATION, *_ADDRESS_STOPS)),
    Status.WON: _CONVERSATION,
    # The person's own request outranks a bounce, as ``lead_unsubscribe`` has it.
    Status.BOUNCED: (Status.UNSUBSCRIBED, *_CONVERSATION),
    Status.UNSUBSCRIBED: _CONVERSATION,
}

def lead_statuses_allowed(from_status: str) -> tuple[str, ...]:
    """The statuses a person may move a lead in ``from_status`` to (not counting its own). Leaving
    ``UNSUBSCRIBED`` or ``BOUNCED`` also needs the address off the suppression list
    (``lead_stop_covering``)."""
    return tuple(status for status in MANUAL_TRANSITIONS.get(from_status, ()) if status != from_status)


def lead_stop_covering(*, lead: Lead) -> str:
    """Why ``lead`` may not leave ``UNSUBSCRIBED`` or ``BOUNCED`` yet — the suppression of its address or
    of a domain above it, in words — or "" when none covers it (or the lead is in neither status)."""
    if lead.status not in FINAL_STATUSES:
        return ""
    return suppressed_addresses([lead.email]).get(lead.email, "")


class TransitionRefused(ValueError):
    """A person asked for a status change the lead's current status does not allow, or one out of
    ``UNSUBSCRIBED`` / ``BOUNCED`` while a suppression still covers the address (``suppressed`` says which)."""

    def __init__(self, *, from_status: str, to_status: str, allowed: tuple[str, ...], suppressed: str = "") -> None:
        self.from_status, self.to_status, self.allowed, self.suppressed = from_status, to_status, allowed, suppressed
        if suppressed:
            super().__init__(f"A lead cannot leave {from_status} while its address is suppressed ({suppressed}). "
                             f"Remove the suppression first, on its own page under Suppressions, then change the "
                             f"status.")
            return
        options = ", ".join(allowed) or "none"
        hint = (" A won lead stays WON: to stop all mail to its address, add the address to the suppression list."
                if from_status in KEPT_THROUGH_ADDRESS_STOPS and to_status in _ADDRESS_STOPS else "")
        super().__init__(f"A lead cannot go from {from_status} to {to_status}. Allowed from {from_status}: "
                         f"{options}.{hint}")


@dataclass
class StatusChanges:
    """What ``leads_change_status`` did to each lead asked for, by id."""

    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # already in the status asked for
    refused: dict[int, TransitionRefused] = field(default_factory=dict)
    addresses: dict[int, str] = field(default_factory=dict)  # every lead found, for saying which is which


def _refusal(*, from_status: str, to_status: str, covering: str) -> TransitionRefused | None:
    """Why a person may not move a lead from ``from_status`` to ``to_status``, or None when they may.
    ``covering`` is the suppression covering the lead's address ("" for none)."""
    allowed = lead_statuses_allowed(from_status)
    if to_status not in allowed:
        return TransitionRefused(from_status=from_status, to_status=to_status, allowed=allowed)
    if covering and from_status in FINAL_STATUSES and to_status not in FINAL_STATUSES:
        return TransitionRefused(from_status=from_status, to_status=to_status, allowed=allowed, suppressed=covering)
    return None


@transaction.atomic
def leads_change_status(*, lead_ids: Iterable[int], to_status: str, actor: str, reason: str = "") -> StatusChanges:
    """A person moves each of ``lead_ids`` to ``to_status``, within ``MANUAL_TRANSITIONS``; each change is
    recorded as a ``LeadEvent``, and each lead the rules refuse is left as it is, with the reason.

    Unsubscribing or marking bounced goes through ``lead_unsubscribe`` / ``lead_mark_bounced`` (the
    address is suppressed everywhere), one lead at a time; every other change stops the leads'
    sequences in a fixed number of statements, however many leads. Leaving ``UNSUBSCRIBED`` or
    ``BOUNCED`` (for anything but ``UNSUBSCRIBED``) is refused while a suppression of the address or of
    a domain above it covers it. A lead already in ``to_status`` is left alone. Ids of leads that do
    not exist are ignored.
    """
    rows = list(Lead.objects.select_for_update().filter(pk__in=list(lead_ids)).order_by("pk")
                .values_list("pk", "status", "email"))
    leaving = [email for _, status, email in rows if status in FINAL_STATUSES and to_status not in FINAL_STATUSES]
    covering = suppressed_addresses(leaving) if leaving else {}
    changes = StatusChanges(addresses={pk: email for pk, _, email in rows})
    moving: list[tuple[int, str]] = []
    for pk, status, email in rows:
        refused = None if status == to_status else _refusal(from_status=status, to_status=to_status,
                                                            covering=covering.get(email, ""))
        if status == to_status:
            changes.unchanged.append(pk)
        elif refused is not None:
            changes.refused[pk] = refused
        else:
            moving.append((pk, status))
    if not moving:
        return changes
    ids = [pk for pk, _ in moving]
    if to_status in _ADDRESS_STOPS:
        stop = lead_unsubscribe if to_status == Status.UNSUBSCRIBED else lead_mark_bounced
        for lead in Lead.objects.select_related("campaign").filter(pk__in=ids).order_by("pk"):
            stop(lead=lead, source=reason or f"set by {actor}", actor=actor)
    else:
        why, now = reason or f"Set by {actor}.", timezone.now()
        lead_events_record(moving, to_status=to_status, actor=actor, reason=why)
        Lead.objects.filter(pk__in=ids).update(status=to_status, status_reason=why, status_changed_at=now,
                                               updated_at=now, next_send_at=None, blocked_reason="",
                                               paused_until=None)
        _cancel_pending(lead_ids=ids, why=why, now=now)
    changes.changed = ids
    return changes


def lead_change_status(*, lead: Lead, to_status: str, actor: str, reason: str = "") -> bool:
    """``leads_change_status`` for one lead: raises its ``TransitionRefused``; returns whether the status
    changed (``lead`` is refreshed either way)."""
    changes = leads_change_status(lead_ids=[lead.pk], to_status=to_status, actor=actor, reason=reason)
    lead.refresh_from_db()
    if lead.pk in changes.refused:
        raise changes.refused[lead.pk]
    return lead.pk in changes.changed


# -- a lead's own fields ----------------------------------------------------------------------------

# An email to the address went out, or may have (in flight, or its outcome unknown): from then on the
# address is what the lead's history, replies and suppressions are about, so it is no longer edited.
EMAIL_FIXED_BY = Q(status__in=(OutboundEmail.Status.SENT, OutboundEmail.Status.UNKNOWN)) | IN_FLIGHT


class EmailFixed(ValueError):
    """A lead's address was to be changed after mail was sent to it."""


def lead_email_fixed(*, lead: Lead) -> bool:
    """Whether anything was sent to ``lead`` (or may have been), so that its address may not change."""
    return lead.pk is not None and OutboundEmail.objects.filter(EMAIL_FIXED_BY, lead_id=lead.pk).exists()


EMAIL_FIXED_MESSAGE = ("The address cannot be changed: mail was already sent to it, and the lead's history and "
                       "replies are about it. Add the new address as a new lead instead.")


def lead_save_profile(*, lead: Lead, fields: list[str]) -> None:
    """Save the given profile ``fields`` of ``lead`` as it holds them, and only those, so a status the
    worker or a reply changed meanwhile is not written back. The status and sequence fields change
    through the services above, never here. Raises ``EmailFixed`` for a change of the address once
    mail was sent to it (``lead_email_fixed``)."""
    held_by_services = {"status", "status_reason", "status_changed_at", "current_step", "next_send_at",
                        "blocked_reason", "paused_until"}
    if held_by_services & set(fields):
        raise ValueError(f"{', '.join(sorted(held_by_services & set(fields)))} change through the status services.")
    if not fields:
        return
    with transaction.atomic():
        if "email" in fields:
            stored = Lead.objects.select_for_update().only("email").get(pk=lead.pk).email
            if stored != lead.email and lead_email_fixed(lead=lead):
                raise EmailFixed(EMAIL_FIXED_MESSAGE)
        lead.save(update_fields=[*fields, "updated_at"])
