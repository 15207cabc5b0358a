"""The interface every alert transport implements, its one error type, and the kind → class registry.

A transport delivers one ``HumanAlertLog`` row through one ``AlertChannel`` (or, for email, through
no channel: the ``AICMO_CAM_ALERT_EMAILS`` list). It returns when the far end accepted the alert and
raises ``TransportError`` otherwise, marked ``permanent`` when trying again cannot help until a
person changes something (a deleted Slack webhook, a refused address). The caller records the error;
a transport never writes to the database.
"""

from __future__ import annotations

from typing import ClassVar, cast
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.urls import reverse
from django.utils.module_loading import import_string
from urllib3.exceptions import MaxRetryError

from cam.egress import EgressRefused, egress_session, status_text
from cam.models import AlertChannel, HumanAlertLog
from cam.secrets import MissingSecret, secret_from_env

# kind → dotted path; a new transport is one class and one line here.
TRANSPORTS: dict[str, str] = {
    AlertChannel.Kind.EMAIL: "cam.alerts.email.EmailTransport",
    AlertChannel.Kind.SLACK: "cam.alerts.slack.SlackTransport",
    AlertChannel.Kind.WEBHOOK: "cam.alerts.webhook.WebhookTransport",
    AlertChannel.Kind.NONE: "cam.alerts.noop.NoopTransport",
}
# An alert without a channel goes to the AICMO_CAM_ALERT_EMAILS list.
FALLBACK_KIND = AlertChannel.Kind.EMAIL


class TransportError(Exception):
    """Delivery failed. ``permanent``: retrying cannot succeed until a person fixes the cause."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class Transport:
    """Delivers alerts of one channel kind."""

    kind: ClassVar[str]

    def send(self, alert: HumanAlertLog, channel: AlertChannel | None) -> None:
        """Deliver ``alert`` through ``channel``; raises ``TransportError`` when it was not accepted."""
        raise NotImplementedError


def get_transport(kind: str) -> Transport:
    """A transport for channels of ``kind``; ``LookupError`` for a kind nothing handles."""
    try:
        path = TRANSPORTS[kind]
    except KeyError:
        raise LookupError(f"No alert transport for channel kind {kind!r}.") from None
    return cast(Transport, import_string(path)())


def transport_for(channel: AlertChannel | None) -> Transport:
    return get_transport(channel.kind if channel is not None else FALLBACK_KIND)


def alert_links(alert: HumanAlertLog) -> dict[str, str]:
    """Admin pages an alert points at, under ``AICMO_CAM_PUBLIC_URL``: the reply (its conversation on the reply
    desk, where it is answered, reclassified and marked handled), the lead, the campaign."""
    targets = (("reply", "admin:cam_reply_thread", alert.inbound_email_id),
               ("lead", "admin:cam_lead_change", alert.lead_id),
               ("campaign", "admin:cam_campaign_change", alert.campaign_id))
    return {name: settings.AICMO_CAM_PUBLIC_URL + reverse(view, args=[pk])
            for name, view, pk in targets if pk is not None}


LINK_LABELS = {"reply": "Open the conversation", "lead": "Open the lead", "campaign": "Open the campaign"}


class HttpTransport(Transport):
    """POSTs JSON to a URL named by the channel's ``url_env`` and maps the answer to success or error.

    2xx is success. 429, 5xx, timeouts and connection errors are transient. Any other answer (a
    4xx such as Slack's 404 ``no_service`` or 403 ``invalid_token``, or a redirect) is permanent:
    the URL or its credentials must be fixed. So is a URL whose host is not on the public internet
    (``cam.egress``, unless ``AICMO_CAM_EGRESS_ALLOW`` names it). An answer is recorded by its status
    alone, never its body, which could carry whatever the far end holds.
    """

    service: ClassVar[str] = "webhook"

    def url(self, channel: AlertChannel | None) -> str:
        if channel is None:
            raise TransportError(f"A {self.service} alert needs a channel.", permanent=True)
        try:
            url = secret_from_env(channel.url_env, purpose=f"the {self.service} URL of alert channel "
                                                          f"{channel.name!r}")
        except MissingSecret as exc:
            raise TransportError(str(exc), permanent=True) from None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The URL is a secret (Slack's carries the token): name the variable, never the value.
            raise TransportError(f"The environment variable {channel.url_env} does not hold an http(s) URL.",
                                 permanent=True)
        return url

    def post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json", "User-Agent": "CAM alerts", **(headers or {})}
        try:
            with egress_session() as session:
                response = session.post(url, data=body, headers=headers, allow_redirects=False,
                                        timeout=settings.AICMO_CAM_ALERT_TIMEOUT_SECONDS)
        except EgressRefused as exc:
            # Names the host only: the rest of a Slack webhook's URL is its secret.
            raise TransportError(f"Not sent to the {self.service}: {exc}.", permanent=True) from None
        except requests.Timeout:
            raise TransportError(f"The {self.service} did not answer within "
                                 f"{settings.AICMO_CAM_ALERT_TIMEOUT_SECONDS} s.") from None
        except requests.ConnectionError as exc:
            raise TransportError(f"Could not reach the {self.service}: {_network_reason(exc)}") from None
        except requests.RequestException as exc:
            raise TransportError(f"Could not send to the {self.service}: {type(exc).__name__}.",
                                 permanent=True) from None
        if 200 <= response.status_code < 300:
            return response
        transient = response.status_code == 429 or response.status_code >= 500
        raise TransportError(f"The {self.service} answered {status_text(response.status_code)}.",
                             permanent=not transient)


def _network_reason(exc: requests.RequestException) -> str:
    """What went wrong on the network, without the URL (a Slack webhook's path is its secret)."""
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        inner = inner.reason  # MaxRetryError's own text repeats the whole URL
    return str(inner) if isinstance(inner, Exception) else type(exc).__name__
