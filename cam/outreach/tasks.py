"""django-q2 entry points for sending. Thin: primitive ids in, a service does the work."""

from __future__ import annotations

from cam.outreach.sending import outbound_send_batch


def send_batch_task(*, mailbox_id: int) -> dict[str, int]:
    """One mailbox's batch, queued by the outreach job so several workers send at once."""
    return outbound_send_batch(mailbox_id=mailbox_id)
