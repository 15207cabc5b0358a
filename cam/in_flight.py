"""The claimed email a sender has in the provider's hands, and taking claimed emails away without it.

A sender's batch claims its emails (``CLAIMED``, ``claimed_by`` its holder). The one it is handing over
right now stays ``CLAIMED`` and is named by its holder's ``SendInFlight`` row, written in the commit that
lets its data go (``cam.outreach.outcomes``), which locks the email's row as it checks the claim.

Whatever else takes claimed emails away (cancelling them when their lead stops, recovering a dead
sender's) must leave that one to its sender, or to recovery's ``UNKNOWN``: it locks the emails first and
reads which are in flight in a statement after that, so that either the sender's mark came first and is
seen, or the lock did and the sender, once it gets the row, finds it taken and does not send it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from cam.models import OutboundEmail, SendInFlight

# An email in a sender's hands: claimed, and its holder's in-flight email.
IN_FLIGHT = Q(status=OutboundEmail.Status.CLAIMED) & Q(
    Exists(SendInFlight.objects.filter(holder=OuterRef("claimed_by"), email_id=OuterRef("pk"))))


def locked_not_in_flight(emails: QuerySet[OutboundEmail], *fields: str) -> list[tuple[Any, ...]]:
    """``(pk, *fields)`` of each of ``emails``, in id order, locked until the caller's transaction ends, less any
    a sender has in flight. Inside a transaction (on SQLite, whose transactions here take the write lock at
    once, the lock is that)."""
    locked = list(emails.select_for_update(of=("self",)).order_by("pk").values_list("pk", *fields, "claimed_by"))
    if not any(row[-1] for row in locked):
        return [row[:-1] for row in locked]
    # A statement of its own, after the lock: it sees every mark committed before the lock was taken. The
    # table holds one row per sender at work, so reading it whole costs less than looking the ids up.
    flying = set(SendInFlight.objects.values_list("email_id", "holder"))
    return [row[:-1] for row in locked if (row[0], row[-1]) not in flying]
