"""Claiming planned emails and sending them through each mailbox's provider, exactly once.

- Rows are claimed inside a transaction with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and
  with a conditional ``UPDATE … WHERE status IN (PENDING, RETRY)`` where the database has no row locks
  (SQLite): either way two senders never claim the same row.
- A mailbox's batch runs under a lease, so its daily cap and minimum gap hold however many workers
  send at once; different mailboxes send in parallel.
- Outcomes are written at the end of a batch in a fixed number of statements. A sender that dies
  mid-batch leaves rows in ``SENDING``: ``outbound_recover_stuck`` turns those into ``UNKNOWN`` (SMTP
  and console: they may have gone out, and there is no way to ask) or back into ``RETRY`` (Resend:
  the same idempotency key makes a second request harmless).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from cam.bulk import bulk_update_values
from cam.jobs.leases import lease_acquire, lease_release
from cam.models import Lead, Mailbox, OutboundEmail, SequenceStep
from cam.outreach.events import provider_events_link
from cam.outreach.messages import build_message
from cam.outreach.planning import SENDING_CAMPAIGNS, step_delay
from cam.outreach.providers import SendResult, get_provider
from cam.pipeline.suppressions import suppressed_addresses

logger = logging.getLogger(__name__)

Status = OutboundEmail.Status
Blocked = Lead.BlockedReason
READY = (Status.PENDING, Status.RETRY)
MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
# Providers whose requests carry an idempotency key: a row left in SENDING may be sent again.
IDEMPOTENT_PROVIDERS = (Mailbox.Provider.RESEND,)


def _ready(now: datetime):
    return OutboundEmail.objects.filter(status__in=READY, next_attempt_at__lte=now,
                                        campaign__status__in=SENDING_CAMPAIGNS,
                                        lead__status=Lead.Status.IN_SEQUENCE)


def outbound_claim(*, mailbox: Mailbox, limit: int, now: datetime) -> list[int]:
    """Mark up to ``limit`` ready emails of ``mailbox`` as SENDING for this caller; returns their ids."""
    token = f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"
    ready = _ready(now).filter(mailbox=mailbox).order_by("next_attempt_at", "pk")
    claim = {"status": Status.SENDING, "claimed_by": token, "claimed_at": now, "attempts": F("attempts") + 1,
             "updated_at": now}
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            ids = list(ready.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:limit])
            OutboundEmail.objects.filter(pk__in=ids).update(**claim)
            return ids
        candidates = list(ready.values_list("pk", flat=True)[:limit])
        OutboundEmail.objects.filter(pk__in=candidates, status__in=READY).update(**claim)
        return list(OutboundEmail.objects.filter(pk__in=candidates, claimed_by=token).values_list("pk", flat=True))


def _retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    if retry_after is not None:
        return timedelta(seconds=max(retry_after, 1))
    return min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def _record(row: OutboundEmail, result: SendResult, now: datetime, next_steps: dict) -> Lead | None:
    """Apply one send's outcome to the row (and return the lead if it changes)."""
    lead = row.lead
    row.last_error = result.error[:2000]
    if result.status == Status.SENT:
        row.status, row.sent_at, row.next_attempt_at = Status.SENT, now, None
        row.provider_message_id = result.provider_message_id[:255]
        following = next_steps.get((row.campaign_id, row.step.position + 1))
        lead.current_step = row.step.position
        lead.last_contacted_at = now
        lead.next_send_at = now + step_delay(following) if following else None
        lead.blocked_reason = ""
        return lead
    if result.status == Status.RETRY and row.attempts < MAX_ATTEMPTS:
        row.status, row.next_attempt_at = Status.RETRY, now + _retry_delay(row.attempts, result.retry_after)
        return None
    if result.status == Status.RETRY:
        row.status, row.next_attempt_at = Status.FAILED, None
        row.last_error = f"Gave up after {row.attempts} attempts. Last: {row.last_error}"
    else:
        row.status, row.next_attempt_at = result.status, None  # FAILED or UNKNOWN
    lead.blocked_reason = Blocked.SEND_UNKNOWN if row.status == Status.UNKNOWN else Blocked.SEND_FAILED
    return lead


def outbound_send_batch(*, mailbox_id: int, limit: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Send what is ready for one mailbox, at most ``limit`` (one when the mailbox has a minimum gap).

    Returns counts per outcome; ``busy`` when another sender holds the mailbox, ``waiting_gap`` when
    its minimum gap has not passed.
    """
    now = now or timezone.now()
    mailbox = Mailbox.objects.filter(pk=mailbox_id, is_active=True).first()
    if mailbox is None:
        return {}
    gap = timedelta(seconds=mailbox.min_gap_seconds)
    if gap and mailbox.last_sent_at and mailbox.last_sent_at + gap > now:
        return {"waiting_gap": 1}
    lease, holder = f"send:mailbox:{mailbox.pk}", f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"
    if not lease_acquire(name=lease, holder=holder):
        return {"busy": 1}
    try:
        return _send(mailbox=mailbox, limit=1 if gap else (limit or settings.AICMO_CAM_SEND_BATCH_SIZE), now=now)
    finally:
        lease_release(name=lease, holder=holder)


def _send(*, mailbox: Mailbox, limit: int, now: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    ids = outbound_claim(mailbox=mailbox, limit=limit, now=now)
    if not ids:
        return counts
    rows = list(OutboundEmail.objects.filter(pk__in=ids).select_related("lead", "campaign", "step")
                .order_by("next_attempt_at", "pk"))
    suppressed = suppressed_addresses(row.to_email for row in rows)
    next_steps = {(s.campaign_id, s.position): s for s in SequenceStep.objects.filter(
        campaign_id__in={row.campaign_id for row in rows})}
    leads: dict[int, Lead] = {}
    with get_provider(mailbox) as provider:
        for row in rows:
            row.mailbox = mailbox
            if row.to_email in suppressed:
                # Suppressed between planning and sending: never send.
                row.status, row.next_attempt_at = Status.CANCELLED, None
                row.last_error = "Address or domain suppressed."
                row.lead.blocked_reason = Blocked.SUPPRESSED
                leads[row.lead_id] = row.lead
                counts["cancelled"] = counts.get("cancelled", 0) + 1
                continue
            try:
                result = provider.send(build_message(row), idempotency_key=f"cam-outbound-{row.pk}")
            except Exception as exc:  # a provider bug must not lose the batch's other outcomes
                logger.exception("Provider %s raised while sending outbound %s", mailbox.provider, row.pk)
                result = SendResult(status=Status.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
            changed = _record(row, result, now, next_steps)
            if changed is not None:
                leads[changed.pk] = changed
            counts[row.status.lower()] = counts.get(row.status.lower(), 0) + 1
    for row in rows:
        row.updated_at = now
    bulk_update_values(rows, ["status", "sent_at", "provider_message_id", "last_error", "next_attempt_at",
                              "updated_at"])
    bulk_update_values(list(leads.values()), ["current_step", "last_contacted_at", "next_send_at",
                                              "blocked_reason"])
    if counts.get("sent"):
        Mailbox.objects.filter(pk=mailbox.pk).update(last_sent_at=now)
        provider_events_link(outbound_emails=[row for row in rows if row.status == Status.SENT])
    return counts


def outbound_recover_stuck(*, now: datetime | None = None) -> dict[str, int]:
    """Rows left in SENDING by a sender that died: UNKNOWN, or RETRY where the provider is idempotent."""
    now = now or timezone.now()
    stale = OutboundEmail.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - timedelta(seconds=settings.Q_TIMEOUT_SECONDS + 60))
    with transaction.atomic():
        retried = stale.filter(mailbox__provider__in=IDEMPOTENT_PROVIDERS).update(
            status=Status.RETRY, next_attempt_at=now, updated_at=now,
            last_error="Found in SENDING after an interrupted send; retried with the same idempotency key.")
        unknown_leads = list(stale.values_list("lead_id", flat=True))
        unknown = stale.update(
            status=Status.UNKNOWN, next_attempt_at=None, updated_at=now,
            last_error="Found in SENDING after an interrupted send: it may have gone out. "
                       "Check the mailbox, then resend or cancel it in the admin.")
        Lead.objects.filter(pk__in=unknown_leads).update(blocked_reason=Blocked.SEND_UNKNOWN)
    return {"recovered_retry": retried, "recovered_unknown": unknown}


def outreach_send(*, now: datetime | None = None, inline: bool = True) -> dict[str, int]:
    """Send every mailbox's ready emails: here and now, or as one queued task per mailbox."""
    now = now or timezone.now()
    mailbox_ids = sorted(set(_ready(now).values_list("mailbox_id", flat=True)))
    totals: dict[str, int] = {"mailboxes": len(mailbox_ids)}
    for mailbox_id in mailbox_ids:
        if inline:
            for key, value in outbound_send_batch(mailbox_id=mailbox_id, now=now).items():
                totals[key] = totals.get(key, 0) + value
        else:
            transaction.on_commit(lambda mailbox_id=mailbox_id: async_task(
                "cam.outreach.tasks.send_batch_task", mailbox_id=mailbox_id, q_options={"group": "cam: send"}))
            totals["queued"] = totals.get("queued", 0) + 1
    return totals
