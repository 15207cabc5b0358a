"""One conversation with a lead, both ways, oldest first: every email we sent it (as it went out) and every
message it sent us, for the reply desk's thread view.

Read only. A fixed number of queries however long the conversation (the reply with its lead and campaign, the
emails sent, the messages received): a thread of fifty messages costs what a thread of one does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from cam.inbox.parsing import parse_message
from cam.models import InboundEmail, Lead, OutboundEmail, Reply

OUT, IN = "out", "in"

# Our compliance footer starts at the signature delimiter "--" on a line of its own (cam.outreach.rendering).
_FOOTER = re.compile(r"\n--[ \t]*\n")


@dataclass
class Message:
    """One message of the conversation: who wrote it, when, what it said in its own words (``text``), and what
    is folded beneath (``folded``: a message's quoted history, our footer), named by ``folded_label``."""

    direction: str  # OUT (we sent it) or IN (the lead sent it)
    at: datetime
    record: OutboundEmail | InboundEmail
    sender: str
    recipient: str
    subject: str
    text: str
    folded: str = ""
    folded_label: str = ""
    step: int | None = None  # the sequence step of an email we sent; None for one not sent by the sequence
    current: bool = False  # the reply the thread was opened on


@dataclass
class Thread:
    reply: Reply
    lead: Lead | None
    messages: list[Message] = field(default_factory=list)


def reply_thread(*, reply_id: int) -> Thread:
    """The conversation ``reply_id`` belongs to: everything sent to and received from its lead, oldest first;
    the reply alone when it matched no lead. Raises ``InboundEmail.DoesNotExist``."""
    reply = (Reply.objects.select_related("lead", "lead__campaign", "mailbox", "assigned_to", "handled_by")
             .defer("raw_message", "references", "failed_recipients", "lead__raw_data", "lead__score_breakdown",
                    "lead__campaign__description")
             .get(pk=reply_id))
    lead = reply.lead
    received = InboundEmail.objects.filter(lead_id=lead.pk) if lead is not None else InboundEmail.objects.filter(
        pk=reply.pk)
    messages = [_received(inbound, current=inbound.pk == reply.pk, lead=lead)
                for inbound in received.only("from_email", "from_name", "subject", "new_text", "raw_message",
                                             "received_at", "created_at", "category")]
    if lead is not None:
        sent = (OutboundEmail.objects.filter(lead_id=lead.pk, status=OutboundEmail.Status.SENT)
                .select_related("step").only("from_email", "to_email", "subject", "body_text", "sent_at",
                                             "created_at", "step__position"))
        messages += [_sent(email) for email in sent]
    messages.sort(key=lambda message: (message.at, message.record.pk, message.direction))
    return Thread(reply=reply, lead=lead, messages=messages)


def _sent(email: OutboundEmail) -> Message:
    body = email.body_text.rstrip()
    own, folded = body, ""
    footer = list(_FOOTER.finditer(body))
    if footer:
        own, folded = body[:footer[-1].start()].rstrip(), body[footer[-1].end():].strip()
    return Message(direction=OUT, at=email.sent_at or email.created_at, record=email, sender=email.from_email,
                   recipient=email.to_email, subject=email.subject, text=own, folded=folded,
                   folded_label="Footer (address and unsubscribe link)" if folded else "",
                   step=email.step.position if email.step else None)


def _received(inbound: InboundEmail, *, current: bool, lead: Lead | None) -> Message:
    whole = _whole_text(inbound)
    own = inbound.new_text.strip()
    # The whole message is folded beneath the sender's own words when it says more than them (what it quotes,
    # a signature); a message without words of its own (a bounce, an empty reply) shows the whole at once.
    folded = whole if whole and own and " ".join(whole.split()) != " ".join(own.split()) else ""
    # A sender who gave no name is named as its lead when it writes from the lead's address.
    name = inbound.from_name or (lead.full_name if lead is not None and inbound.from_email == lead.email else "")
    sender = f"{name} <{inbound.from_email}>" if name else inbound.from_email
    return Message(direction=IN, at=inbound.received_at or inbound.created_at, record=inbound, sender=sender,
                   recipient="", subject=inbound.subject, text=own or whole, folded=folded,
                   folded_label="The whole message, with what it quotes" if folded else "", current=current)


def _whole_text(inbound: InboundEmail) -> str:
    """The message's text as its sender's mail program showed it (the first text part), quotes included."""
    raw = bytes(inbound.raw_message or b"")
    if not raw:
        return ""
    return parse_message(raw).text
