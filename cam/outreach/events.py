"""Delivery events reported by a provider's webhook: kept once each, and turned into status changes.

Anymail verifies and parses the webhook (see ``cam.views.ResendTrackingWebhookView``) and sends its
``tracking`` signal; ``provider_event_received`` hands the event to ``provider_event_record``.

For Resend the event id is the ``svix-id`` header: Resend's payload carries no id of its own, and
svix keeps ``svix-id`` the same when it re-delivers an event after a failure (only the timestamp and
signature change), so a replay hits the unique ``(provider, event_id)`` and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import IntegrityError, transaction
from django.utils import timezone

from cam.leads import lead_mark_bounced, lead_mark_complained
from cam.models import Mailbox, OutboundEmail, ProviderEvent

logger = logging.getLogger(__name__)

# anymail's esp_name → our provider.
PROVIDERS_BY_ESP_NAME = {"Resend": Mailbox.Provider.RESEND}


def _delivered(*, event: ProviderEvent, outbound: OutboundEmail) -> None:
    OutboundEmail.objects.filter(pk=outbound.pk, delivered_at__isnull=True).update(
        delivered_at=event.occurred_at or event.received_at, updated_at=timezone.now())


def _bounced(*, event: ProviderEvent, outbound: OutboundEmail) -> None:
    # The email itself stays SENT: it was sent, and the bounce is recorded on the lead and the event.
    lead_mark_bounced(lead=outbound.lead, source=_source(event))


def _complained(*, event: ProviderEvent, outbound: OutboundEmail) -> None:
    lead_mark_complained(lead=outbound.lead, source=_source(event))


# What each kind of event does to our rows; the others (sent, opened, deferred, …) are only kept.
EFFECTS: dict[str, Callable[..., None]] = {
    EventType.DELIVERED: _delivered,
    EventType.BOUNCED: _bounced,
    EventType.COMPLAINED: _complained,
}


def _source(event: ProviderEvent) -> str:
    return f"{event.get_provider_display()} webhook, event {event.event_id}"


@transaction.atomic
def provider_event_record(*, provider: str, event_id: str, event_type: str, provider_message_id: str,
                          recipient: str, description: str, payload: dict[str, Any],
                          occurred_at: datetime | None) -> ProviderEvent | None:
    """Keep one provider event and apply it to the email it is about, all in one transaction.

    Returns the new ``ProviderEvent``, or None when ``(provider, event_id)`` was already recorded:
    a replay changes nothing. An event for a message id CAM did not send is kept, unlinked, and
    changes nothing else. ``delivered`` sets the email's ``delivered_at``; ``bounced`` marks the lead
    ``BOUNCED`` and suppresses the address; ``complained`` unsubscribes the lead and suppresses the
    address as a complaint (see ``cam.leads``).
    """
    # Said not empty, as the index of sent emails' ids is (``outbound_sent_msgid_idx``), so it is used.
    outbound = (OutboundEmail.objects.select_related("lead__campaign").filter(provider_message_id=provider_message_id)
                .exclude(provider_message_id="").order_by("pk").first() if provider_message_id else None)
    try:
        with transaction.atomic():  # a savepoint: a duplicate must not spoil the outer transaction
            event = ProviderEvent.objects.create(
                provider=provider, event_id=event_id[:255], event_type=event_type[:32],
                provider_message_id=provider_message_id[:255], outbound_email=outbound,
                recipient=recipient[:254], description=description, payload=payload, occurred_at=occurred_at)
    except IntegrityError:
        logger.info("%s event %s was already recorded; ignored.", provider, event_id)
        return None
    effect = EFFECTS.get(event_type)
    if outbound is not None and effect is not None:
        effect(event=event, outbound=outbound)
    return event


def _event_id(event: AnymailTrackingEvent) -> str:
    if event.event_id:
        return str(event.event_id)
    # A signed Resend request always has svix-id; this only guards against a provider that sends
    # none. The same payload gives the same id, so a replay is still recognised.
    payload = json.dumps(event.esp_event, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def provider_event_received(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """Receiver of anymail's ``tracking`` signal (connected in ``CamConfig.ready``)."""
    provider = PROVIDERS_BY_ESP_NAME.get(esp_name)
    if provider is None:
        logger.warning("Tracking event from %s ignored: CAM only handles %s.", esp_name,
                       ", ".join(PROVIDERS_BY_ESP_NAME))
        return
    payload = event.esp_event if isinstance(event.esp_event, dict) else {}
    provider_event_record(
        provider=provider, event_id=_event_id(event), event_type=event.event_type or EventType.UNKNOWN,
        provider_message_id=event.message_id or "", recipient=event.recipient or "",
        description=event.description or "", payload=payload, occurred_at=event.timestamp)


def provider_events_link(*, outbound_emails: list[OutboundEmail]) -> int:
    """Apply events that arrived before their email's send was recorded (a webhook can beat the
    sender's bookkeeping). One query when there are none; returns how many were applied."""
    by_message_id = {e.provider_message_id: e for e in outbound_emails if e.provider_message_id}
    if not by_message_id:
        return 0
    waiting = list(ProviderEvent.objects.filter(outbound_email__isnull=True,
                                                provider_message_id__in=list(by_message_id)).order_by("pk"))
    for event in waiting:
        outbound = by_message_id[event.provider_message_id]
        with transaction.atomic():
            ProviderEvent.objects.filter(pk=event.pk).update(outbound_email=outbound)
            effect = EFFECTS.get(event.event_type)
            if effect is not None:
                effect(event=event, outbound=outbound)
    return len(waiting)
