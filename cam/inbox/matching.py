"""Which email of ours a message answers, and which lead it is about.

In order of trust: the subject carries a lead's unsubscribe token (the mailto address of our
``List-Unsubscribe`` header puts it there, signed, so it names its lead even when the request comes
from another address or without thread headers); the thread headers (``In-Reply-To``,
``References``) point at our Message-ID; a bounce or a complaint carries our original message inside
it (``message/rfc822``, ``text/rfc822-headers``) with our Message-ID, or names the failed recipient;
otherwise the sender's address is a lead's. A message that matches nothing is kept and shown, never
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

from cam.inbox.bounces import original_headers
from cam.inbox.text import header
from cam.models import Lead, OutboundEmail
from cam.outreach.unsubscribe import InvalidUnsubscribeToken, lead_from_token

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# What a signed token looks like (urlsafe base64, ":", urlsafe base64): a subject's other words are
# not even tried. At most a few are checked, so a subject full of lookalikes costs little.
_TOKEN = re.compile(r"(?<![\w.:-])([\w.-]{1,40}:[\w-]{20,100})(?![\w:-])", re.ASCII)
MAX_TOKENS_TRIED = 3
CONTACTED = (OutboundEmail.Status.SENT, OutboundEmail.Status.UNKNOWN)


@dataclass(frozen=True)
class Match:
    outbound: OutboundEmail | None
    lead: Lead | None
    how: str  # "unsubscribe token", "thread", "original message", "failed recipient", "sender", or ""


def _ids(*values: str) -> list[str]:
    found: list[str] = []
    for value in values:
        found.extend(_MESSAGE_ID.findall(value or ""))
    return found


def embedded_message_ids(message: EmailMessage) -> list[str]:
    """Message-IDs of the original message a bounce or feedback report carries (attached, or pasted
    below the MTA's text)."""
    original = original_headers(message)
    return _ids(str(original.get("Message-ID", ""))) if original is not None else []


def _latest_to(address: str, mailbox_id: int) -> OutboundEmail | None:
    sent = (OutboundEmail.objects.select_related("lead").filter(to_email=address, status__in=CONTACTED)
            .order_by("-sent_at", "-pk"))
    return sent.filter(mailbox_id=mailbox_id).first() or sent.first()


def token_lead(message: EmailMessage) -> Lead | None:
    """The lead whose unsubscribe token the subject carries (``unsubscribe <token>``, as our mailto
    asks for, also after a "Re:" or a forward), or None."""
    for candidate in _TOKEN.findall(header(message, "Subject"))[:MAX_TOKENS_TRIED]:
        try:
            return lead_from_token(candidate)
        except InvalidUnsubscribeToken:
            continue
    return None


def match_message(*, message: EmailMessage, mailbox_id: int, sender: str, in_reply_to: str, references: str,
                  failed_recipients: list[str]) -> Match:
    """Find what ``message`` answers. Costs a few indexed lookups."""
    lead = token_lead(message)
    if lead is not None:
        # Signed with our secret for this lead alone: stronger than any header a client or a colleague's
        # forward may have set, and the sender need not be the lead's address at all.
        sent = (OutboundEmail.objects.select_related("lead").filter(lead=lead, status__in=CONTACTED)
                .order_by("-sent_at", "-pk"))
        return Match(sent.filter(mailbox_id=mailbox_id).first() or sent.first(), lead, "unsubscribe token")
    thread = _ids(in_reply_to, references)
    if thread:
        outbound = (OutboundEmail.objects.select_related("lead").filter(message_id__in=thread)
                    .order_by("-step__position", "-pk").first())
        if outbound:
            return Match(outbound, outbound.lead, "thread")
    embedded = embedded_message_ids(message)
    if embedded:
        outbound = OutboundEmail.objects.select_related("lead").filter(message_id__in=embedded).first()
        if outbound:
            return Match(outbound, outbound.lead, "original message")
    for address in failed_recipients:
        outbound = _latest_to(address.lower(), mailbox_id)
        if outbound:
            return Match(outbound, outbound.lead, "failed recipient")
    if sender:
        outbound = _latest_to(sender.lower(), mailbox_id)
        if outbound:
            return Match(outbound, outbound.lead, "sender")
        lead = Lead.objects.filter(email=sender.lower()).order_by("-last_contacted_at", "-pk").first()
        if lead:
            return Match(None, lead, "sender")
    return Match(None, None, "")
