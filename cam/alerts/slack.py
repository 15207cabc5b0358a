"""Alerts to a Slack channel through an incoming webhook.

The webhook URL carries its own token, so it is a secret: the channel's ``url_env`` names the
environment variable holding it. Slack answers 200 ``ok``; a deleted webhook or app answers 404
``no_service``, a revoked one 403 ``invalid_token``, an archived channel 410 ``channel_is_archived``
— all permanent. 429 and 5xx are transient.
"""

from __future__ import annotations

import json
from typing import Any

from cam.alerts.transports import LINK_LABELS, HttpTransport, alert_links
from cam.models import AlertChannel, HumanAlertLog

# Slack refuses a section whose text is longer than this.
SECTION_TEXT_LIMIT = 3000


def slack_escape(text: str) -> str:
    """Text that Slack's mrkdwn shows as written (it reads &, < and > as markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int = SECTION_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: HumanAlertLog) -> dict[str, Any]:
    """The message: the title in bold, the body, then links to the admin pages the alert points at."""
    title = slack_escape(" ".join(alert.title.split()))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*")}}]
    if alert.body.strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(slack_escape(alert.body.strip()))}})
    links = [f"<{url}|{LINK_LABELS[name]}>" for name, url in alert_links(alert).items()]
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(links)}})
    return {"text": title, "blocks": blocks}


class SlackTransport(HttpTransport):
    kind = AlertChannel.Kind.SLACK
    service = "Slack webhook"

    def send(self, alert: HumanAlertLog, channel: AlertChannel | None) -> None:
        url = self.url(channel)
        self.post(url, json.dumps(slack_payload(alert)).encode())
