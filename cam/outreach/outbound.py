"""Staff actions on the outbound queue: cancel an email, or send one again after checking it."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from cam.in_flight import locked_not_in_flight
from cam.models import Lead, OutboundEmail

Status = OutboundEmail.Status
CANCELLABLE = (Status.PENDING, Status.CLAIMED, Status.RETRY, Status.UNKNOWN, Status.FAILED)
RESENDABLE = (Status.UNKNOWN, Status.FAILED, Status.CANCELLED)


@transaction.atomic
def outbound_cancel(*, outbound_ids: Iterable[int], by: str) -> int:
    """Cancel emails that have not (knowingly) gone out; their leads wait, marked ``cancelled``."""
    now = timezone.now()
    # The one a sender has in flight is left to it: it may be going out right now (cam.in_flight).
    emails = OutboundEmail.objects.filter(pk__in=[pk for pk, in locked_not_in_flight(
        OutboundEmail.objects.filter(pk__in=list(outbound_ids), status__in=CANCELLABLE))])
    lead_ids = list(emails.values_list("lead_id", flat=True))
    changed = emails.update(status=Status.CANCELLED, next_attempt_at=None, updated_at=now,
                            last_error=f"Cancelled by {by}.")
    Lead.objects.filter(pk__in=lead_ids).update(blocked_reason=Lead.BlockedReason.CANCELLED, updated_at=now)
    return changed


@transaction.atomic
def outbound_resend(*, outbound_ids: Iterable[int], by: str) -> int:
    """Queue failed, unknown or cancelled emails again, as they were rendered, with the same Message-ID.

    For an ``UNKNOWN`` email this is the person's decision that it did not go out.
    """
    now = timezone.now()
    emails = OutboundEmail.objects.filter(pk__in=list(outbound_ids), status__in=RESENDABLE)
    lead_ids = list(emails.values_list("lead_id", flat=True))
    changed = emails.update(status=Status.PENDING, next_attempt_at=now, attempts=0, updated_at=now,
                            last_error=f"Resent by {by}.")
    Lead.objects.filter(pk__in=lead_ids).update(blocked_reason="", updated_at=now)
    return changed
