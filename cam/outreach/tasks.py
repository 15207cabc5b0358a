"""django-q2 entry points for sending. Thin: primitive ids in, a service does the work."""

from __future__ import annotations

from typing import Any

from cam.budget import Budget
from cam.outreach.sending import mailbox_send_due


def send_batch_task(*, mailbox_id: int, seconds: float | None = None) -> dict[str, Any]:
    """One mailbox's due emails, queued by the outreach job so several workers send at once, within the
    ``seconds`` the send step had left when it queued them (None: no limit)."""
    return mailbox_send_due(mailbox_id=mailbox_id, budget=Budget.unlimited().within(seconds))
