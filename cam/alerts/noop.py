"""Alerts that go nowhere: logged, and counted as sent. For a deployment that reads alerts in the admin."""

from __future__ import annotations

import logging

from cam.alerts.transports import Transport
from cam.models import AlertChannel, HumanAlertLog

logger = logging.getLogger(__name__)


class NoopTransport(Transport):
    kind = AlertChannel.Kind.NONE

    def send(self, alert: HumanAlertLog, channel: AlertChannel | None) -> None:
        logger.info("Alert %s (%s) for channel %s: %s", alert.pk, alert.alert_type,
                    channel.name if channel else "-", alert.title)
