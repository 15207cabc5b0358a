"""Amazon SES notifications delivered by email: bounces, complaints and deliveries as JSON.

SES reports what became of a message it sent through Amazon SNS; an SNS topic with an email
subscription sends each notification as a plain-text message from ``no-reply@sns.amazonaws.com``
whose body is the notification's JSON, either bare (raw message delivery) or wrapped in SNS's
envelope (``{"Type": "Notification", "Message": "<the JSON as a string>"}``). The event publishing
form (``eventType`` instead of ``notificationType``) is read the same way.

What it says:

- ``Bounce``: ``bounce.bouncedRecipients`` (address, status, diagnostic); ``bounceType``
  ``Permanent`` is hard, ``Transient`` soft (a full mailbox, a message too large, content refused),
  ``Undetermined`` soft unless a recipient's status is 5.x.x;
- ``Complaint``: ``complaint.complainedRecipients``; a ``complaintFeedbackType`` of ``not-spam`` is
  no complaint;
- ``Delivery``: a success notice, never a bounce.

``mail.headers`` and ``mail.commonHeaders.messageId`` carry our Message-ID when SES kept the headers:
that is how matching finds our email (``message_ids``). Mail servers cut lines longer than 998
characters with ``!`` and a folded line break, as in the samples of the suite's corpus: that break is
removed before the JSON is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from cam.inbox.text import ADDRESS, header, is_text, leaf_parts, memoized, part_text, sender_address

SNS_SENDER = "no-reply@sns.amazonaws.com"
KINDS = ("Bounce", "Complaint", "Delivery")
_CUT = re.compile(r"!\r?\n[ \t]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True)
class SesNotification:
    kind: str  # "Bounce", "Complaint" or "Delivery"
    recipients: list[str]
    hard: bool = False  # for a bounce
    status: str = ""  # the first recipient's enhanced status code, for a bounce
    feedback_type: str = ""  # for a complaint
    message_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _json_body(message: Message) -> dict[str, Any] | None:
    """The notification's JSON object, unwrapped from SNS's envelope; ``None`` when the body holds none."""
    for part in leaf_parts(message):
        if not is_text(part):
            continue
        text = _CUT.sub("", part_text(part))
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            data = json.loads(text[start:end + 1])
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("Message"), str):  # SNS's envelope
            try:
                data = json.loads(_CUT.sub("", data["Message"]))
            except ValueError:
                return None
        return data if isinstance(data, dict) else None
    return None


def _addresses(entries: Any, key: str = "emailAddress") -> list[str]:
    found: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        value = entry.get(key, "") if isinstance(entry, dict) else entry
        address = ADDRESS.search(str(value or ""))
        if address and address.group(0).lower() not in found:
            found.append(address.group(0).lower())
    return found


def _message_ids(mail: Any) -> list[str]:
    """Message-IDs of the message SES sent, from its kept headers (SES's own ``messageId`` is not one of ours)."""
    if not isinstance(mail, dict):
        return []
    values = [str(item.get("value", "")) for item in mail.get("headers") or []
              if isinstance(item, dict) and str(item.get("name", "")).lower() == "message-id"]
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and common.get("messageId"):
        values.append(str(common["messageId"]))
    found: list[str] = []
    for value in values:
        found += [found_id for found_id in _MESSAGE_ID.findall(value) if found_id not in found]
    return found


def ses_notification(message: Message) -> SesNotification | None:
    """The SES notification ``message`` carries, or ``None`` when it is not one."""
    return memoized(message, "ses notification", lambda: _ses_notification(message))


def _ses_notification(message: Message) -> SesNotification | None:
    if sender_address(message) != SNS_SENDER and not header(message, "x-amz-sns-message-id"):
        return None
    data = _json_body(message)
    if data is None:
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "")
    if kind not in KINDS:
        return None
    message_ids = _message_ids(data.get("mail"))
    reasons = [f"an Amazon SES {kind.lower()} notification"]
    if kind == "Bounce":
        bounce = data["bounce"] if isinstance(data.get("bounce"), dict) else {}
        entries = [entry for entry in bounce.get("bouncedRecipients") or [] if isinstance(entry, dict)]
        statuses = [_STATUS.search(f"{entry.get('status', '')} {entry.get('diagnosticCode', '')}") for entry in entries]
        status = next((found.group(0) for found in statuses if found), "")
        bounce_type = str(bounce.get("bounceType", ""))
        hard = bounce_type == "Permanent" or (bounce_type == "Undetermined" and status.startswith("5"))
        reasons.append(f"bounceType {bounce_type or 'not given'} ({bounce.get('bounceSubType', '')})")
        reasons += [f"diagnostic: {entry['diagnosticCode']}" for entry in entries if entry.get("diagnosticCode")][:3]
        return SesNotification(kind=kind, recipients=_addresses(entries), hard=hard, status=status,
                               message_ids=message_ids, reasons=reasons)
    if kind == "Complaint":
        complaint = data["complaint"] if isinstance(data.get("complaint"), dict) else {}
        feedback_type = str(complaint.get("complaintFeedbackType") or "abuse")
        return SesNotification(kind=kind, recipients=_addresses(complaint.get("complainedRecipients")),
                               feedback_type=feedback_type, message_ids=message_ids,
                               reasons=[*reasons, f"complaintFeedbackType {feedback_type}"])
    delivery = data["delivery"] if isinstance(data.get("delivery"), dict) else {}
    return SesNotification(kind=kind, recipients=_addresses(delivery.get("recipients"), key=""),
                           message_ids=message_ids,
                           reasons=[*reasons, f"delivered: {delivery.get('smtpResponse', '')}".strip()])
