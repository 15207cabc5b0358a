"""A lead's whole story, in the order it happened: where it came from, how it scored, every email planned,
held back, sent or refused, every reply and what CAM made of it, every status change with who made it and
why, the alerts a person received about it, and what stops mail to its address.

Read only, for the lead's page. One query per kind of record (the lead with its source and campaign, the
harvest run, the status changes, the emails, the provider's reports on them, the replies, the alerts,
the suppressions), however long the story: a lead with fifty replies costs what a lead with one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from cam.models import (
    HumanAlertLog,
    InboundEmail,
    JobExecution,
    Lead,
    LeadEvent,
    OutboundEmail,
    ProviderEvent,
    Suppression,
)
from cam.suppressions import suppressions_covering

# What each entry is about; the page gives each kind its icon and colour.
ARRIVED, SCORED, STATUS, PLANNED, HELD, SENT, NOT_SENT, PROVIDER, REPLY, ALERT, STOPPED = (
    "arrived", "scored", "status", "planned", "held", "sent", "not_sent", "provider", "reply", "alert", "stopped")

# Replies are shown by their own words; a long one is cut here and shown whole on its own page.
WORDS_SHOWN = 1200


@dataclass
class Entry:
    """One thing that happened to the lead: when, what kind, a one-line title, and what else is worth
    reading (``detail``: short lines; ``body``: a message's text; ``record``: the object, for a link)."""

    at: datetime
    kind: str
    title: str
    detail: list[str] = field(default_factory=list)
    body: str = ""
    status: str = ""  # the value the page colours (an email's status, a reply's category, a lead's status)
    status_text: str = ""
    actor: str = ""
    record: Any = None
    order: int = 0  # breaks ties of ``at`` in the order things happen (an email is planned, then sent)


def lead_timeline(lead: Lead, *, now: datetime | None = None, oldest_first: bool = False) -> list[Entry]:
    """Everything that happened to ``lead``, newest first (or oldest first). See the module's docstring."""
    now = now or timezone.now()
    lead = (Lead.objects.select_related("source", "campaign", "mailbox")
            .defer("campaign__description").get(pk=lead.pk))
    entries: list[Entry] = []
    entries += _provenance(lead)
    entries += _status_changes(lead)
    emails = list(OutboundEmail.objects.filter(lead=lead).select_related("step").defer("body_html"))
    entries += _emails(emails)
    entries += _provider_reports(lead)
    entries += _replies(lead)
    entries += _alerts(lead)
    entries += _stops(lead, now=now)
    entries.sort(key=lambda entry: (entry.at, entry.order), reverse=not oldest_first)
    return entries


def _provenance(lead: Lead) -> list[Entry]:
    arrived_at = lead.harvested_at or lead.created_at
    detail = [f"Campaign: {lead.campaign.name}"]
    if lead.source is not None:
        detail.append(f"Source: {lead.source.name} ({lead.source.get_kind_display()})")
    else:
        detail.append("Added by hand or by the API" if not lead.raw_data else "Imported from a file")
    run = _harvest_run(lead)
    if run is not None:
        detail.append(f"Harvest run {run.execution_id} ({run.get_status_display().lower()})")
    entries = [Entry(at=arrived_at, kind=ARRIVED, title="Lead added", detail=detail, record=run, order=0)]
    if lead.scored_at is not None and lead.score is not None:
        entries.append(Entry(at=lead.scored_at, kind=SCORED, title=f"Scored {lead.score} of 100",
                             detail=_score_lines(lead), record=lead.score_breakdown, order=1))
    return entries


def _harvest_run(lead: Lead) -> JobExecution | None:
    """The harvest that was running when the lead arrived, for its campaign or for all of them."""
    if lead.harvested_at is None:
        return None
    return (JobExecution.objects.filter(job="harvest", started_at__lte=lead.harvested_at)
            .filter(Q(campaign_id=lead.campaign_id) | Q(campaign__isnull=True))
            .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=lead.harvested_at))
            .only("execution_id", "status", "started_at").order_by("-started_at").first())


def _score_lines(lead: Lead) -> list[str]:
    """Whether the score qualifies; the criteria themselves are the breakdown (``Entry.record``)."""
    threshold = lead.campaign.min_score
    if lead.score is None:
        return []
    return [f"The campaign qualifies leads from {threshold}: {'passed' if lead.score >= threshold else 'below it'}"]


def _status_changes(lead: Lead) -> list[Entry]:
    labels = dict(Lead.Status.choices)
    entries = []
    for event in LeadEvent.objects.filter(lead=lead).only(
            "from_status", "to_status", "actor", "reason", "created_at", "inbound_email_id"):
        before, after = labels.get(event.from_status, event.from_status), labels.get(event.to_status, event.to_status)
        entries.append(Entry(
            at=event.created_at, kind=STATUS, title=f"{before} → {after}",
            detail=[event.reason] if event.reason else [], status=event.to_status,
            status_text=after, actor=_actor(event.actor), record=event,
            order=5))
    return entries


def _actor(actor: str) -> str:
    """"staff:anna" reads "anna"; "system:followup" reads "CAM (followup)"."""
    kind, _, name = actor.partition(":")
    if kind == "staff":
        return name
    if kind == "system":
        return f"CAM ({name})" if name else "CAM"
    return actor


def _emails(emails: list[OutboundEmail]) -> list[Entry]:
    entries = []
    for email in emails:
        step = f"Step {email.step.position}" if email.step else "Answer"
        entries.append(Entry(at=email.created_at, kind=PLANNED, title=f"{step} planned",
                             detail=[f"Subject: {email.subject}"] if email.subject else [], record=email, order=2))
        label = email.get_status_display()
        sender = [f"From {email.from_email}"] if email.from_email else []
        if email.status == OutboundEmail.Status.SENT and email.sent_at is not None:
            entries.append(Entry(at=email.sent_at, kind=SENT, title=f"{step} sent: {email.subject}",
                                 detail=[*sender, f"To {email.to_email}",
                                         *(["Unsubscribed by its link"] if email.unsubscribed_at else [])],
                                 body=email.body_text, status=email.status, status_text=label, record=email,
                                 order=3))
        elif email.status in (OutboundEmail.Status.FAILED, OutboundEmail.Status.UNKNOWN,
                              OutboundEmail.Status.CANCELLED, OutboundEmail.Status.RETRY):
            entries.append(Entry(at=email.updated_at, kind=NOT_SENT, title=f"{step} {label.lower()}",
                                 detail=[email.last_error] if email.last_error else [], status=email.status,
                                 status_text=label, record=email, order=3))
        if email.unsubscribed_at is not None:
            entries.append(Entry(at=email.unsubscribed_at, kind=STOPPED, title="Unsubscribed by the email's link",
                                 detail=[f"{step}: {email.subject}"], record=email, order=4))
    return entries


def _provider_reports(lead: Lead) -> list[Entry]:
    entries = []
    for event in (ProviderEvent.objects.filter(outbound_email__lead=lead)
                  .only("provider", "event_type", "description", "occurred_at", "received_at")):
        entries.append(Entry(at=event.occurred_at or event.received_at, kind=PROVIDER,
                             title=f"{event.provider.capitalize()}: {event.event_type.replace('_', ' ')}",
                             detail=[event.description] if event.description else [], record=event, order=4))
    return entries


def _replies(lead: Lead) -> list[Entry]:
    labels = dict(InboundEmail.Category.choices)
    entries = []
    for reply in (InboundEmail.objects.filter(lead=lead).defer("raw_message", "references", "failed_recipients")):
        category = labels.get(reply.category, "Not classified yet")
        detail = [f"From {reply.from_name} <{reply.from_email}>" if reply.from_name else f"From {reply.from_email}"]
        if reply.category:
            confidence = f" ({round(100 * reply.confidence)} % sure)" if reply.confidence is not None else ""
            detail.append(f"Read as {category.lower()}{confidence} by {_actor(reply.classified_by) or 'CAM'}")
            reasons = [str(reason) for reason in (reply.classification_reasons or [])][:3]
            detail += [f"· {reason}" for reason in reasons]
        if reply.confirmation == InboundEmail.Confirmation.NEEDED:
            detail.append("Waiting for a person to confirm it")
        words = reply.new_text or ""
        entries.append(Entry(at=reply.received_at or reply.created_at, kind=REPLY,
                             title=f"Reply: {reply.subject}" if reply.subject else "Reply",
                             detail=detail, body=words[:WORDS_SHOWN] + ("…" if len(words) > WORDS_SHOWN else ""),
                             status=reply.category, status_text=category, record=reply, order=6))
    return entries


def _alerts(lead: Lead) -> list[Entry]:
    entries = []
    for alert in HumanAlertLog.objects.filter(lead=lead).only(
            "alert_type", "title", "recipients", "sent_successfully", "sent_at", "failed_at", "created_at",
            "last_error"):
        if alert.sent_successfully:
            detail = [f"To {alert.recipients}"] if alert.recipients else []
        elif alert.failed_at is not None:
            detail = [f"Could not be delivered: {alert.last_error}" if alert.last_error else "Could not be delivered"]
        else:
            detail = ["Waiting to be sent"]
        entries.append(Entry(at=alert.sent_at or alert.created_at, kind=ALERT, title=f"Alert: {alert.title}",
                             detail=detail, record=alert, order=7))
    return entries


def _stops(lead: Lead, *, now: datetime) -> list[Entry]:
    """What stops mail to the address (suppressions, in any spelling, by address or domain), and what
    holds the lead back right now."""
    entries = []
    reasons = dict(Suppression.Reason.choices)
    for row in suppressions_covering(lead.email).only("email", "domain", "reason", "source", "created_at"):
        listed = row.email or f"the domain {row.domain}"
        entries.append(Entry(at=row.created_at, kind=STOPPED, title=f"Suppressed: {listed}",
                             detail=[f"{reasons.get(row.reason, row.reason)}" + (f" — {row.source}" if row.source
                                                                                else "")],
                             record=row, order=8))
    if lead.blocked_reason:
        detail = [lead.status_reason] if lead.status_reason else []
        if lead.next_send_at is not None:
            detail.append(f"Next try: {timezone.localtime(lead.next_send_at):%a %d %b %H:%M}")
        entries.append(Entry(at=now, kind=HELD, title=f"Held back now: {lead.get_blocked_reason_display()}",
                             detail=detail, order=9))
    return entries
