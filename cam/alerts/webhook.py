"""Alerts POSTed as signed JSON to any URL (a chat bot, an incident tool, your own service).

The body::

    {"id": 42, "type": "POSITIVE_REPLY", "title": "...", "body": "...",
     "created_at": "2025-01-31T09:15:00+00:00",
     "links": {"reply": "https://cam.example.com/admin/...", "lead": "...", "campaign": "..."}}

Headers: ``X-CAM-Timestamp`` (Unix seconds) and ``X-CAM-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``f"{timestamp}.{body}"`` (the raw body bytes) under the secret named by the
channel's ``secret_env``. A receiver recomputes it over the bytes it received, compares in constant
time and refuses old timestamps (``verify_signature`` below is that check). ``id`` is the same on
every retry of one alert to one channel, so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from cam.alerts.transports import HttpTransport, TransportError, alert_links
from cam.models import AlertChannel, HumanAlertLog
from cam.secrets import MissingSecret, secret_from_env

TIMESTAMP_HEADER = "X-CAM-Timestamp"
SIGNATURE_HEADER = "X-CAM-Signature"
# How old a request's timestamp may be before a receiver refuses it as a replay.
DEFAULT_TOLERANCE_SECONDS = 300


def webhook_payload(alert: HumanAlertLog) -> dict[str, Any]:
    return {"id": alert.pk, "type": alert.alert_type, "title": alert.title, "body": alert.body,
            "created_at": alert.created_at.isoformat(), "links": alert_links(alert)}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-CAM-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, *, timestamp: str, signature: str, body: bytes,
                     tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does: True if ``signature`` is ours for ``body`` and ``timestamp`` is recent."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


class WebhookTransport(HttpTransport):
    kind = AlertChannel.Kind.WEBHOOK
    service = "webhook"

    def send(self, alert: HumanAlertLog, channel: AlertChannel | None) -> None:
        url = self.url(channel)
        assert channel is not None  # url() refuses None
        try:
            secret = secret_from_env(channel.secret_env, purpose=f"the signing secret of alert channel "
                                                                 f"{channel.name!r}")
        except MissingSecret as exc:
            raise TransportError(str(exc), permanent=True) from None
        body = json.dumps(webhook_payload(alert), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        self.post(url, body, {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)})
