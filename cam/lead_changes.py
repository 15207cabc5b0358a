"""Changes to many locked leads, decided one by one in memory and written together.

The follow-up of a batch of replies (``cam.followup.replies_follow_up``) decides each reply's changes
with the rules of ``cam.leads`` — a status change and its event, a status kept, an address stop, a
company stop — against leads it locked and read in one query. ``LeadChanges`` records them and
``apply`` writes them in a fixed number of statements whatever the number of replies: the leads the
stops reach beyond the batch (read and locked in one query), the suppressions (one read, one insert),
the lead events (one insert), the leads (one ``UPDATE``), the emails cancelled (found and locked in
one query, cancelled in one ``UPDATE``).

The caller makes sure the replies of one ``LeadChanges`` do not reach each other's leads or addresses
(``cam.followup`` groups them so), so that writing them together does what writing them one after
the other would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from cam.addresses import address_spellings
from cam.bulk import bulk_update_values
from cam.in_flight import locked_not_in_flight
from cam.leads import (
    CANCELLABLE_EMAIL_STATUSES,
    FINAL_STATUSES,
    KEPT_THROUGH_ADDRESS_STOPS,
    OPEN_STATUSES,
    STOPPED,
    WHY_A_SALE_STAYS,
    AddressStop,
    cancel_reason,
    kept_reason,
)
from cam.models import InboundEmail, Lead, LeadEvent, OutboundEmail, Suppression

Status = Lead.Status

# The lead columns the follow-up changes; the leads are locked and were read in this transaction, so
# writing back a column a lead's change did not touch writes the value it has.
WRITTEN = ["status", "status_reason", "status_changed_at", "updated_at", "paused_until", "blocked_reason",
           "next_send_at", "replied_at", "current_step"]


@dataclass
class _AddressStopped:
    kind: AddressStop
    lead: Lead
    spellings: tuple[str, ...]
    source: str
    actor: str
    inbound_email: InboundEmail | None


@dataclass
class _CompanyStopped:
    lead: Lead
    actor: str
    reason: str
    inbound_email: InboundEmail | None


@dataclass
class LeadChanges:
    """What the follow-up of a group of replies does to their leads, written by ``apply``."""

    now: datetime
    events: list[LeadEvent] = field(default_factory=list)
    changed: dict[int, Lead] = field(default_factory=dict)
    # Emails to cancel, in order: a lead's (its id) or an address's (its spellings), and their last_error.
    cancels: list[tuple[int | tuple[str, ...], str]] = field(default_factory=list)
    address_stops: list[_AddressStopped] = field(default_factory=list)
    company_stops: list[_CompanyStopped] = field(default_factory=list)

    def _event(self, lead_id: int, from_status: str, to_status: str, *, actor: str, reason: str,
               inbound_email: InboundEmail | None) -> None:
        self.events.append(LeadEvent(lead_id=lead_id, from_status=from_status, to_status=to_status,
                                     actor=actor[:200], reason=reason, inbound_email=inbound_email))

    def touch(self, lead: Lead) -> None:
        """``lead`` changed in memory: it is written by ``apply``."""
        self.changed[lead.pk] = lead

    def status_kept(self, *, lead: Lead, status: str, actor: str, reason: str, to_status: str = "",
                    inbound_email: InboundEmail | None = None, why: str = "") -> None:
        """``lead`` stays in ``status`` although ``reason`` would have moved it: ``cam.leads.lead_status_kept``."""
        self._event(lead.pk, status, status, actor=actor, inbound_email=inbound_email,
                    reason=kept_reason(status=status, reason=reason, to_status=to_status, why=why))

    def set_status(self, *, lead: Lead, to_status: str, actor: str, reason: str,
                   inbound_email: InboundEmail | None = None, stop_sequence: bool = True,
                   paused_until: datetime | None = None, next_send_at: datetime | None = None) -> bool:
        """Move ``lead`` (locked and read by the caller) to ``to_status`` with the reason, recorded as a
        ``LeadEvent``. With ``stop_sequence`` the lead gets no further email: its ``next_send_at`` is
        cleared and its emails still waiting are cancelled. A lead in a final status is not moved: the
        event records the reason and that it stayed. Unsubscribing and bouncing are address stops
        (``address_stop``), which also suppress the address. Returns whether the status changed."""
        if to_status in FINAL_STATUSES:
            raise ValueError(f"{to_status} is set by lead_unsubscribe / lead_mark_bounced, which suppress the address.")
        previous = lead.status
        if previous in FINAL_STATUSES:
            self.status_kept(lead=lead, status=previous, to_status=to_status, actor=actor, reason=reason,
                             inbound_email=inbound_email)
            return False
        lead.status, lead.status_reason, lead.status_changed_at, lead.updated_at = to_status, reason, self.now, self.now
        lead.paused_until, lead.blocked_reason = paused_until, ""
        lead.next_send_at = None if stop_sequence else next_send_at
        self.touch(lead)
        if previous != to_status:
            self._event(lead.pk, previous, to_status, actor=actor, reason=reason, inbound_email=inbound_email)
        if stop_sequence:
            self.cancels.append((lead.pk, cancel_reason(reason)))
        return previous != to_status

    def address_stop(self, *, lead: Lead, kind: AddressStop, source: str, actor: str,
                     inbound_email: InboundEmail | None = None) -> None:
        """``cam.leads``' address stops (``lead_unsubscribe``, ``lead_mark_complained``,
        ``lead_mark_bounced``): the lead itself now, its address's other leads, suppression and
        emails in ``apply``."""
        spellings = address_spellings(lead.email)
        self.address_stops.append(_AddressStopped(kind, lead, spellings, source, actor, inbound_email))
        reason = kind.own_reason(source)
        if lead.status not in kind.keep_statuses:
            self._event(lead.pk, lead.status, kind.to_status, actor=actor, reason=reason, inbound_email=inbound_email)
            self._stop(lead, kind.to_status, reason)
        elif lead.status != kind.to_status:
            # E.g. a bounce for a lead that had unsubscribed, or an unsubscribe from a customer: the lead
            # stays as it was, and the history says so.
            self.status_kept(lead=lead, status=lead.status, to_status=kind.to_status, actor=actor, reason=reason,
                             inbound_email=inbound_email,
                             why=WHY_A_SALE_STAYS if lead.status in KEPT_THROUGH_ADDRESS_STOPS else "")
        self.cancels.append((spellings, kind.cancel_reason(source)))

    def stop_company(self, *, lead: Lead, actor: str, reason: str, inbound_email: InboundEmail | None = None) -> None:
        """Every other open lead of ``lead``'s campaign at the same company domain goes to ``NURTURE`` (the
        campaign's "stop the company on a reply" setting: the conversation is now with their colleague);
        they are found and moved in ``apply``, their waiting emails cancelled."""
        self.company_stops.append(_CompanyStopped(lead, actor, reason, inbound_email))

    def _stop(self, lead: Lead, status: str, reason: str) -> None:
        lead.status, lead.status_reason, lead.status_changed_at, lead.updated_at = status, reason, self.now, self.now
        for name, value in STOPPED.items():
            setattr(lead, name, value)
        self.touch(lead)

    def apply(self) -> None:
        """Write everything recorded, in a fixed number of statements."""
        self._stop_others()
        self._suppress()
        if self.events:
            LeadEvent.objects.bulk_create(self.events)
        bulk_update_values(list(self.changed.values()), WRITTEN)
        self._cancel()

    def _stop_others(self) -> None:
        """The open leads the stops reach beyond their own: the same address in other campaigns, the same
        company in the campaign. One query, locking them; each is moved by the first stop that reaches it."""
        if not self.address_stops and not self.company_stops:
            return
        reach = Q()
        for address in self.address_stops:
            reach |= Q(email__in=address.spellings)
        for company in self.company_stops:
            reach |= Q(campaign_id=company.lead.campaign_id, email_domain=company.lead.email_domain)
        own = ({address.lead.pk for address in self.address_stops} | {company.lead.pk for company in self.company_stops}
               | set(self.changed))
        others = (Lead.objects.select_for_update(of=("self",)).filter(reach, status__in=OPEN_STATUSES)
                  .exclude(pk__in=own).order_by("pk"))
        for other in others:
            self._stop_other(other)

    def _stop_other(self, other: Lead) -> None:
        for address in self.address_stops:
            if other.email in address.spellings:
                kind = address.kind
                reason = kind.other_reason(address.source, address.lead.campaign)
                self._event(other.pk, other.status, kind.to_status, actor=address.actor, reason=reason,
                            inbound_email=address.inbound_email)
                self._stop(other, kind.to_status, reason)
                return
        for company in self.company_stops:
            if (other.campaign_id, other.email_domain) == (company.lead.campaign_id, company.lead.email_domain):
                self._event(other.pk, other.status, Status.NURTURE, actor=company.actor, reason=company.reason,
                            inbound_email=company.inbound_email)
                self._stop(other, Status.NURTURE, company.reason)
                self.cancels.append((other.pk, cancel_reason(company.reason)))
                return

    def _suppress(self) -> None:
        """Each stopped address goes on the suppression list unless a spelling of it is there already."""
        if not self.address_stops:
            return
        listed = set(Suppression.objects.filter(email__in={spelling for stop in self.address_stops
                                                           for spelling in stop.spellings})
                     .values_list("email", flat=True))
        new: dict[str, Suppression] = {}
        for stop in self.address_stops:
            if not listed.intersection(stop.spellings) and stop.spellings[0] not in new:
                new[stop.spellings[0]] = Suppression(email=stop.spellings[0], reason=stop.kind.suppression_reason,
                                                     source=stop.source[:200])
        # Ignoring conflicts as get_or_create would: another worker may have listed it meanwhile.
        Suppression.objects.bulk_create(list(new.values()), ignore_conflicts=True)

    def _cancel(self) -> None:
        """The emails to cancel, still waiting, found and locked in one query, and cancelled in one
        ``UPDATE``: each with the reason of the first change that cancels it. An address's emails are
        those to it and those of its leads, whichever address they went to."""
        if not self.cancels:
            return
        lead_ids = {which for which, _ in self.cancels if isinstance(which, int)}
        spellings = {spelling for which, _ in self.cancels if isinstance(which, tuple) for spelling in which}
        reached = Q(lead_id__in=lead_ids)
        if spellings:
            reached |= Q(to_email__in=spellings) | Q(lead__email__in=spellings)
        # The one a sender has in flight is its to record (cam.in_flight).
        waiting = locked_not_in_flight(OutboundEmail.objects.filter(reached, status__in=CANCELLABLE_EMAIL_STATUSES),
                                       "lead_id", "to_email", "lead__email")
        cancelled = []
        for pk, lead_id, to_email, lead_email in waiting:
            why = next(why for which, why in self.cancels if (
                which == lead_id if isinstance(which, int) else to_email in which or lead_email in which))
            cancelled.append(OutboundEmail(pk=pk, status=OutboundEmail.Status.CANCELLED, next_attempt_at=None,
                                           updated_at=self.now, last_error=why))
        bulk_update_values(cancelled, ["status", "next_attempt_at", "updated_at", "last_error"])
