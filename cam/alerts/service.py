"""The alert log: queuing alerts (one row per target, once per key) and dispatching them with retries.

- ``alert_queue`` writes ``HumanAlertLog`` rows and never sends: callers run it inside their own
  transaction (a reply's ``alert_sent`` is set in the same one), and a repeated call with the same
  key creates nothing new (``INSERT … ON CONFLICT DO NOTHING``, which never breaks that transaction).
- ``alerts_dispatch`` sends what is pending, oldest first. Each alert is claimed with one conditional
  ``UPDATE`` (``claimed_at``), so concurrent dispatchers send different alerts side by side and no
  lock is held while a transport talks to Slack or a mail server. A dispatcher that dies mid-send
  leaves its claim, which is taken over after ``CLAIM_TIMEOUT``: delivery is at least once, never
  silently lost.

An alert is *pending* while ``sent_successfully`` is false and ``failed_at`` is empty. It ends as
*sent* (``sent_successfully`` true, ``sent_at`` when) or *failed for good* (``failed_at`` when
dispatch gave up, ``last_error`` why): after a permanent error, or after a transient one once the
alert is older than ``ALERT_RETRY_WINDOW``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from cam.addresses import address_key
from cam.alerts.email import parse_recipients
from cam.alerts.transports import TransportError, transport_for
from cam.models import AlertChannel, Campaign, HumanAlertLog, InboundEmail, Lead
from cam.models.fields import max_length

logger = logging.getLogger(__name__)

# A transient failure is retried on every dispatch until the alert is this old; then it is given up.
ALERT_RETRY_WINDOW = timedelta(hours=24)
# A claim older than this is from a dispatcher that died mid-send (transports time out well before).
CLAIM_TIMEOUT = timedelta(minutes=5)
# The target of the AICMO_CAM_ALERT_EMAILS copy, in the row's idempotency key.
FALLBACK_TARGET = "emails"
KEY_MAX_LENGTH = max_length(HumanAlertLog, "idempotency_key")
TITLE_MAX_LENGTH = max_length(HumanAlertLog, "title")
ERROR_MAX_LENGTH = 2000
# One target of an alert: its channel (None: the AICMO_CAM_ALERT_EMAILS list), its row's key, its recipients.
Target = tuple[AlertChannel | None, str, str]


def channel_takes(channel: AlertChannel, alert_type: str) -> bool:
    """Whether ``channel`` wants alerts of ``alert_type`` (an empty list means every type)."""
    return not channel.alert_types or alert_type in channel.alert_types


def alert_target_key(idempotency_key: str, target: str) -> str:
    """The row key for one target of an alert; a long key is shortened with a digest, so it stays unique."""
    suffix = f"|{target}"
    if len(idempotency_key) + len(suffix) > KEY_MAX_LENGTH:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        idempotency_key = f"{idempotency_key[: KEY_MAX_LENGTH - len(suffix) - len(digest) - 1]}~{digest}"
    return idempotency_key + suffix


def alerts_pending(*, now: datetime | None = None) -> QuerySet[HumanAlertLog]:
    """Alerts still to be sent and not being sent right now, whose channel is enabled (or that go to
    AICMO_CAM_ALERT_EMAILS)."""
    stale = (now or timezone.now()) - CLAIM_TIMEOUT
    return HumanAlertLog.objects.filter(sent_successfully=False, failed_at__isnull=True).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale)).filter(
        Q(channel__isnull=True) | Q(channel__enabled=True))


def alerts_failed() -> QuerySet[HumanAlertLog]:
    """Alerts that dispatch gave up on; ``last_error`` says why."""
    return HumanAlertLog.objects.filter(sent_successfully=False, failed_at__isnull=False)


@dataclass(frozen=True)
class AlertRequest:
    """One alert to queue (``alerts_queue``): ``alert_queue``'s arguments."""

    alert_type: str
    title: str
    body: str
    idempotency_key: str
    campaign: Campaign | None = None
    lead: Lead | None = None
    inbound_email: InboundEmail | None = None


def alert_queue(*, alert_type: str, title: str, body: str, idempotency_key: str, campaign: Campaign | None = None,
                lead: Lead | None = None, inbound_email: InboundEmail | None = None) -> list[HumanAlertLog]:
    """Record an alert for every target; returns the rows (new or already there), sending nothing.

    Targets: each enabled channel whose ``alert_types`` is empty or holds ``alert_type``, plus the
    ``AICMO_CAM_ALERT_EMAILS`` list when it is set. When neither exists, one row without a channel
    is still written, so the alert is on record; dispatch marks it failed (it has nowhere to go).
    Each row's key is ``idempotency_key`` and its target: calling again with the same key creates a
    row only for a target that has none (a channel added since), so an alert is sent once per target.

    One email per person: each address gets the alert from one target only (``_email_recipients``),
    and an email row is sent to the recipients it was queued with.
    Safe inside a caller's transaction. Raises ``ValueError`` for an unknown type or an empty key.
    """
    keys = alerts_queue([AlertRequest(alert_type=alert_type, title=title, body=body, idempotency_key=idempotency_key,
                                      campaign=campaign, lead=lead, inbound_email=inbound_email)])
    return list(HumanAlertLog.objects.filter(idempotency_key__in=keys).select_related("channel").order_by("pk"))


def alerts_queue(alerts: list[AlertRequest]) -> list[str]:
    """``alert_queue`` for many alerts at once, in three queries however many (the channels, the rows
    already queued under their keys, the insert); returns the rows' keys. Raises ``ValueError`` before
    writing anything when one of them has an unknown type or an empty key."""
    for alert in alerts:
        if alert.alert_type not in HumanAlertLog.AlertType.values:
            raise ValueError(f"Unknown alert type {alert.alert_type!r}.")
        if not alert.idempotency_key:
            raise ValueError("An alert needs an idempotency key.")
    if not alerts:
        return []
    enabled = list(AlertChannel.objects.filter(enabled=True).order_by("pk"))
    targeted: list[tuple[AlertRequest, list[Target]]] = []
    for alert in alerts:
        channels = [channel for channel in enabled if channel_takes(channel, alert.alert_type)]
        targets: list[Target] = [
            (channel, alert_target_key(alert.idempotency_key, f"channel:{channel.pk}"), _recipients_of(channel))
            for channel in channels]
        if settings.AICMO_CAM_ALERT_EMAILS or not channels:
            targets.append((None, alert_target_key(alert.idempotency_key, FALLBACK_TARGET),
                            ", ".join(settings.AICMO_CAM_ALERT_EMAILS)))
        targeted.append((alert, targets))
    existing = dict(HumanAlertLog.objects.filter(
        idempotency_key__in=[key for _, targets in targeted for _, key, _ in targets]).values_list(
        "idempotency_key", "recipients"))
    rows: list[HumanAlertLog] = []
    for alert, targets in targeted:
        title = alert.title
        if len(title) > TITLE_MAX_LENGTH:
            title = title[: TITLE_MAX_LENGTH - 1] + "…"
        rows += [HumanAlertLog(alert_type=alert.alert_type, title=title, body=alert.body, channel=channel,
                               recipients=recipients, idempotency_key=key, campaign=alert.campaign, lead=alert.lead,
                               inbound_email=alert.inbound_email)
                 for channel, key, recipients in _email_recipients(targets, existing)]
    HumanAlertLog.objects.bulk_create(rows, ignore_conflicts=True)
    return [key for _, targets in targeted for _, key, _ in targets]


def _email_recipients(targets: list[Target], queued: dict[str, str]) -> list[Target]:
    """The targets with each address kept by one email target only, so a person listed twice gets one email.

    The ``AICMO_CAM_ALERT_EMAILS`` copy keeps its addresses: it is the one that still goes out when a
    channel is misconfigured and disabled. Email channels then keep, in the order they were made, the
    addresses no target before them has; rows already queued under this key (an alert queued again,
    ``queued``: recipients by row key) count first. A channel left with nobody of its own gets no row.
    Recipients that do not read as addresses are kept as written, for the transport to report."""
    existing = {key: queued[key] for _, key, _ in targets if key in queued}
    taken = {address_key(address) for recipients in existing.values() for address in _addresses(recipients)}
    fallback_first = sorted(targets, key=lambda target: target[0] is not None)
    kept: dict[str, str] = {}
    for channel, key, recipients in fallback_first:
        if key in existing or (channel is not None and channel.kind != AlertChannel.Kind.EMAIL):
            kept[key] = recipients
            continue
        addresses = _addresses(recipients)
        if not addresses:  # nobody, or a list that does not parse: as written
            kept[key] = recipients
            continue
        own = [address for address in addresses if address_key(address) not in taken]
        taken.update(address_key(address) for address in own)
        if own or channel is None:
            kept[key] = ", ".join(own)
    return [(channel, key, kept[key]) for channel, key, _ in targets if key in kept]


def _addresses(recipients: str) -> list[str]:
    try:
        return parse_recipients(recipients)
    except ValueError:
        return []


def _recipients_of(channel: AlertChannel) -> str:
    """Who an email channel's row is for, as written then (checked when it is sent, not here)."""
    if channel.kind != AlertChannel.Kind.EMAIL:
        return ""
    try:
        return ", ".join(parse_recipients(channel.recipients))
    except ValueError:
        return channel.recipients


def alerts_dispatch(*, now: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Send up to ``limit`` pending alerts, oldest first, each through its channel's transport.

    Every try adds one to ``attempts``. Success: ``sent_successfully``, ``sent_at``. A
    ``TransportError`` sets ``last_error`` on the alert and on its channel. Transient: the alert
    waits for the next dispatch, and so do the channel's other alerts in this one (a channel that
    is down is not waited on once per alert). Permanent: the alert fails for good and its channel
    is disabled until a person re-enables it; the channel's other pending alerts wait for that.
    Returns counts: ``sent``, ``failed_transient``, ``failed_permanent``, ``channels_disabled`` and
    ``given_up`` (transient failures past ``ALERT_RETRY_WINDOW``, also in ``failed_transient``).
    """
    now = now or timezone.now()
    counts = {"sent": 0, "failed_transient": 0, "failed_permanent": 0, "channels_disabled": 0, "given_up": 0}
    candidates = list(alerts_pending(now=now).order_by("created_at", "pk").values_list("pk", "channel_id")[:limit])
    failing: set[int | None] = set()  # targets that failed in this dispatch: their other alerts wait
    for alert_id, channel_id in candidates:
        if channel_id in failing:
            continue
        outcome = _alert_send(alert_id=alert_id, now=now)
        for key in outcome:
            counts[key] += 1
        if outcome and outcome[0] != "sent":
            failing.add(channel_id)
    return counts


def _claim(alert_id: int, now: datetime) -> HumanAlertLog | None:
    """Mark one pending alert as being sent by this dispatcher and count the attempt; None if another
    dispatcher has it (or it was sent meanwhile). One conditional UPDATE: no lock is held while the
    transport talks to the outside world."""
    # Only the row's own columns in this UPDATE: a condition through a join would become a subquery,
    # which PostgreSQL does not re-check after waiting for a concurrent claim of the same row.
    claimable = HumanAlertLog.objects.filter(pk=alert_id, sent_successfully=False, failed_at__isnull=True).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
    if not claimable.update(claimed_at=now, attempts=F("attempts") + 1):
        return None
    return HumanAlertLog.objects.select_related("channel").get(pk=alert_id)


def _alert_send(*, alert_id: int, now: datetime) -> list[str]:
    """Send one alert and record the outcome; returns its counts. At least once: a dispatcher that
    dies mid-send leaves a claim that is taken over after ``CLAIM_TIMEOUT``."""
    alert = _claim(alert_id, now)
    if alert is None:
        return []
    channel = alert.channel
    try:
        transport_for(channel).send(alert, channel)
    except LookupError as exc:  # a channel kind no transport handles
        return _record_failure(alert, channel, TransportError(str(exc), permanent=True), now)
    except TransportError as exc:
        return _record_failure(alert, channel, exc, now)
    except Exception as exc:  # a transport's bug must not stop the alerts queued behind this one
        logger.exception("Alert transport raised for alert %s", alert.pk)
        return _record_failure(alert, channel, TransportError(f"{type(exc).__name__}: {exc}"), now)
    alert.sent_successfully, alert.sent_at, alert.last_error, alert.claimed_at = True, now, "", None
    alert.save(update_fields=["sent_successfully", "sent_at", "last_error", "claimed_at"])
    if channel is not None and channel.last_error:
        AlertChannel.objects.filter(pk=channel.pk).update(last_error="", updated_at=now)
    return ["sent"]


def _record_failure(alert: HumanAlertLog, channel: AlertChannel | None, error: TransportError,
                    now: datetime) -> list[str]:
    message = str(error)[:ERROR_MAX_LENGTH]
    outcome = ["failed_permanent" if error.permanent else "failed_transient"]
    alert.last_error, alert.claimed_at = message, None
    if error.permanent:
        alert.failed_at = now
    elif now - alert.created_at >= ALERT_RETRY_WINDOW:
        alert.failed_at = now
        alert.last_error = (f"Gave up after {alert.attempts} attempts over {_hours(ALERT_RETRY_WINDOW)} hours. "
                            f"Last error: {message}")[:ERROR_MAX_LENGTH]
        outcome.append("given_up")
    alert.save(update_fields=["last_error", "failed_at", "claimed_at"])
    logger.warning("Alert %s (%s) failed %s: %s", alert.pk, channel.name if channel else FALLBACK_TARGET,
                   "for good" if alert.failed_at else "for now", message)
    if channel is None:
        return outcome
    remember = {"last_error": message, "last_error_at": now, "updated_at": now}
    if error.permanent and AlertChannel.objects.filter(pk=channel.pk, enabled=True).update(enabled=False, **remember):
        logger.warning("Alert channel %s disabled: %s", channel.name, message)
        outcome.append("channels_disabled")
    else:
        AlertChannel.objects.filter(pk=channel.pk).update(**remember)
    return outcome


def _hours(window: timedelta) -> int:
    return int(window.total_seconds() // 3600)
