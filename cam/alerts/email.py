"""Alerts by email, through Django's own mail settings (``EMAIL_URL``), not a campaign mailbox.

An email channel sends to its ``recipients``; an alert without a channel goes to
``AICMO_CAM_ALERT_EMAILS``. An alert queued with its recipients (``cam.alerts.service.alert_queue``,
which gives each address to one target only) goes to those. Outcomes: accepted → success; the
server refusing the recipients, the sender or the message with a 5xx reply → permanent; 4xx
replies, connection errors and timeouts → transient. A refused login (535) is transient too: it is
Django's mail configuration that needs fixing, not the channel, so the channel is not disabled for it.
"""

from __future__ import annotations

import re
import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from cam.alerts.transports import LINK_LABELS, Transport, TransportError, alert_links
from cam.models import AlertChannel, HumanAlertLog

_SEPARATORS = re.compile(r"[,;\s]+")


def parse_recipients(text: str) -> list[str]:
    """The addresses in ``text`` (separated by commas), once each; ``ValueError`` names a bad one."""
    addresses: list[str] = []
    for address in _SEPARATORS.split(text or ""):
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise ValueError(f"{address!r} is not an email address.") from None
        if address.lower() not in {known.lower() for known in addresses}:
            addresses.append(address)
    return addresses


def alert_email_body(alert: HumanAlertLog) -> str:
    links = [f"{LINK_LABELS[name]}: {url}" for name, url in alert_links(alert).items()]
    return "\n\n".join(part for part in (alert.body.strip(), "\n".join(links)) if part) + "\n"


class EmailTransport(Transport):
    kind = AlertChannel.Kind.EMAIL

    def recipients(self, channel: AlertChannel | None, alert: HumanAlertLog | None = None) -> list[str]:
        """Who gets the email: the recipients the alert was queued with, else the channel's (or the
        setting's) as they are now. Raises a permanent ``TransportError`` when there is nobody to send to."""
        queued = alert.recipients.strip() if alert is not None else ""
        if queued:
            try:
                return parse_recipients(queued)
            except ValueError as exc:
                where = f"Alert channel {channel.name!r}" if channel is not None else "AICMO_CAM_ALERT_EMAILS"
                raise TransportError(f"{where} has a bad recipient: {exc}", permanent=True) from None
        if channel is None:
            if not settings.AICMO_CAM_ALERT_EMAILS:
                raise TransportError("AICMO_CAM_ALERT_EMAILS is empty and no alert channel takes this alert: "
                                     "it has nowhere to go.", permanent=True)
            return list(settings.AICMO_CAM_ALERT_EMAILS)
        try:
            recipients = parse_recipients(channel.recipients)
        except ValueError as exc:
            raise TransportError(f"Alert channel {channel.name!r} has a bad recipient: {exc}", permanent=True) from None
        if not recipients:
            raise TransportError(f"Alert channel {channel.name!r} has no recipients.", permanent=True)
        return recipients

    def send(self, alert: HumanAlertLog, channel: AlertChannel | None) -> None:
        recipients = self.recipients(channel, alert)
        message = EmailMessage(
            subject=" ".join(alert.title.split()), body=alert_email_body(alert),
            from_email=settings.DEFAULT_FROM_EMAIL, to=recipients,
            connection=get_connection(timeout=settings.AICMO_CAM_ALERT_TIMEOUT_SECONDS))
        try:
            message.send()
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"The mail server refused Django's login (EMAIL_URL, EMAIL_HOST_PASSWORD): "
                                 f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            refusals = {address: _reply(code, text) for address, (code, text) in exc.recipients.items()}
            permanent = all(500 <= code < 600 for code, _ in exc.recipients.values())
            details = "; ".join(f"{address}: {reply}" for address, reply in refusals.items())
            raise TransportError(f"The mail server refused the recipients: {details}", permanent=permanent) from None
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            raise TransportError(f"The mail server turned the connection away: "
                                 f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:  # sender refused, message refused
            raise TransportError(f"The mail server refused the alert: {_reply(exc.smtp_code, exc.smtp_error)}",
                                 permanent=500 <= exc.smtp_code < 600) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, timed out, refused, TLS
            raise TransportError(f"Could not reach the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: "
                                 f"{type(exc).__name__}: {exc}") from None


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}"
