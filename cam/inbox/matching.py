"""Which email of ours a message answers, which lead it is about, and whether it proves it.

In order of trust: the message came back to one of our signed return paths (``Delivered-To``,
``X-Original-To``, ``To``…, or the ``Return-Path`` of the original it carries; see
``cam.return_path``); the subject carries a lead's unsubscribe token (the mailto address of
our ``List-Unsubscribe`` header puts it there, signed, so it names its lead even when the request
comes from another address or without thread headers); the thread headers (``In-Reply-To``,
``References``) point at our Message-ID; a bounce or a complaint carries our original message inside
it (``message/rfc822``, ``text/rfc822-headers``, or pasted below its text) with our Message-ID; it
names the failed recipient; the sender's address is a lead's. A message that matches nothing is kept
and shown, never dropped.

The first four are proof that the message is about an email we sent: nobody else knows our
Message-IDs or a lead's token, or can sign a return path. The last two are not — anyone can send a
"MAILER-DAEMON" report naming any address — so a bounce or complaint matched only that way changes
nothing until a person confirms it (``unproven``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from django.db.models import Q

from cam.addresses import address_spellings
from cam.inbox.reports import original_headers
from cam.inbox.ses import ses_notification
from cam.inbox.text import header
from cam.models import Lead, OutboundEmail
from cam.outreach.unsubscribe import InvalidUnsubscribeToken, lead_from_token
from cam.return_path import outbound_id_from_return_path

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# What a signed token looks like (urlsafe base64, ":", urlsafe base64): a subject's other words are
# not even tried. At most a few are checked, so a subject full of lookalikes costs little.
_TOKEN = re.compile(r"(?<![\w.:-])([\w.-]{1,40}:[\w-]{20,100})(?![\w:-])", re.ASCII)
MAX_TOKENS_TRIED = 3
CONTACTED = (OutboundEmail.Status.SENT, OutboundEmail.Status.UNKNOWN)
# Where the address a message was delivered to shows: the delivering server's headers, and the
# report's To (a bounce is addressed to the return path).
DELIVERY_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "x-delivered-to", "to")
# How a match proves the message is about an email we sent.
PROOFS = ("return path", "unsubscribe token", "thread", "original message")


@dataclass(frozen=True)
class Match:
    outbound: OutboundEmail | None
    lead: Lead | None
    how: str  # "return path", "unsubscribe token", "thread", "original message", "failed recipient",
    # "sender", or "" when unmatched


def _ids(*values: str) -> list[str]:
    found: list[str] = []
    for value in values:
        found.extend(_MESSAGE_ID.findall(value or ""))
    return found


def embedded_message_ids(message: Message) -> list[str]:
    """Message-IDs of the original message a bounce or feedback report carries (attached, or pasted
    below the MTA's text, or among the headers an Amazon SES notification kept)."""
    original = original_headers(message)
    found = _ids(str(original.get("Message-ID", ""))) if original is not None else []
    notification = ses_notification(message)
    return [*found, *(found_id for found_id in notification.message_ids if found_id not in found)] if notification \
        else found


def _raw_values(message: Message, names: tuple[str, ...]) -> list[str]:
    """Every value of the named headers, as written (a header repeated, like Delivered-To, counts each time)."""
    return [value if isinstance(value, str) else str(value) for name, value in message.raw_items()
            if name.lower() in names]


def signed_outbound_ids(message: Message) -> list[int]:
    """The OutboundEmail ids named by a valid signed return path the message was delivered to, or by
    the ``Return-Path`` of the original it carries. Signatures that do not verify name nothing."""
    values = _raw_values(message, DELIVERY_HEADERS)
    original = original_headers(message)
    if original is not None:
        values += _raw_values(original, ("return-path",))
    found: list[int] = []
    for value in values:
        for address in re.findall(r"[^\s<>,;:\"()]+@[^\s<>,;:\"()]+", value):
            outbound_id = outbound_id_from_return_path(address)
            if outbound_id is not None and outbound_id not in found:
                found.append(outbound_id)
    return found


def _latest_to(address: str, mailbox_id: int, known: Known | None = None) -> OutboundEmail | None:
    """Our latest email to ``address`` that reached someone, from ``mailbox_id`` if any, else from any mailbox."""
    looked_up, outbound = known.latest_to(address, mailbox_id) if known is not None else (False, None)
    if looked_up:
        return outbound
    sent = (OutboundEmail.objects.select_related("lead").filter(to_email=address, status__in=CONTACTED)
            .order_by("-sent_at", "-pk"))
    return sent.filter(mailbox_id=mailbox_id).first() or sent.first()


def _sender_lead(address: str, known: Known | None = None) -> Lead | None:
    looked_up, lead = known.sender_lead(address) if known is not None else (False, None)
    if looked_up:
        return lead
    return Lead.objects.filter(email=address).order_by("-last_contacted_at", "-pk").first()


def token_lead(message: Message) -> Lead | None:
    """The lead whose unsubscribe token the subject carries (``unsubscribe <token>``, as our mailto
    asks for, also after a "Re:" or a forward), or None."""
    for candidate in _TOKEN.findall(header(message, "Subject"))[:MAX_TOKENS_TRIED]:
        try:
            return lead_from_token(candidate)
        except InvalidUnsubscribeToken:
            continue
    return None


@dataclass
class Known:
    """Our emails a batch of messages may be about, read in one query for the whole batch (``known_emails``),
    so that matching each message asks the database nothing more in the usual cases; and, for the messages
    those do not match, our emails to their senders and failed recipients and the leads with their
    senders' addresses (``known_addresses``: two queries for the batch)."""

    by_message_id: dict[str, OutboundEmail]
    by_pk: dict[int, OutboundEmail]
    # Per address looked up (as the field stores it): our emails to it that reached someone, in the order
    # ``_latest_to``'s query gives them; and the leads with that address, in ``_sender_lead``'s order.
    to_address: dict[str, list[OutboundEmail]] = field(default_factory=dict)
    leads: dict[str, list[Lead]] = field(default_factory=dict)

    def latest_to(self, address: str, mailbox_id: int) -> tuple[bool, OutboundEmail | None]:
        """Whether ``address`` was looked up, and what ``_latest_to`` gives for it."""
        sent = self.to_address.get(_stored(address))
        if sent is None:
            return False, None
        return True, next((outbound for outbound in sent if outbound.mailbox_id == mailbox_id), None) or \
            next(iter(sent), None)

    def sender_lead(self, address: str) -> tuple[bool, Lead | None]:
        """Whether ``address`` was looked up, and what ``_sender_lead`` gives for it."""
        leads = self.leads.get(_stored(address))
        return (False, None) if leads is None else (True, next(iter(leads), None))

    def thread(self, ids: list[str]) -> tuple[bool, OutboundEmail | None]:
        """Whether ``ids`` name at most one email of ours, and that email (None when they name none). When they
        name several, the query decides which of them (by step)."""
        found = {self.by_message_id[found_id].pk: self.by_message_id[found_id] for found_id in ids
                 if found_id in self.by_message_id}
        if len(found) > 1:
            return False, None
        return True, next(iter(found.values()), None)

    def first(self, ids: list[str]) -> OutboundEmail | None:
        """What ``filter(message_id__in=ids).first()`` gives: the one with the lowest id."""
        found = [self.by_message_id[found_id] for found_id in ids if found_id in self.by_message_id]
        return min(found, key=lambda outbound: outbound.pk, default=None)

    def latest(self, pks: list[int]) -> OutboundEmail | None:
        """What ``filter(pk__in=pks).order_by("-pk").first()`` gives."""
        found = [self.by_pk[pk] for pk in pks if pk in self.by_pk]
        return max(found, key=lambda outbound: outbound.pk, default=None)


def known_emails(*, message_ids: set[str], pks: set[int]) -> Known:
    """Our emails with these Message-IDs or ids (and their leads), in one query."""
    if not message_ids and not pks:
        return Known({}, {})
    rows = list(OutboundEmail.objects.select_related("lead").filter(
        Q(message_id__in=message_ids) | Q(pk__in=pks)))
    return Known({row.message_id: row for row in rows}, {row.pk: row for row in rows})


def known_addresses(known: Known, addresses: set[str]) -> None:
    """Adds to ``known`` our emails to ``addresses`` that reached someone and the leads with those addresses:
    two queries, in the orders of ``_latest_to`` and ``_sender_lead`` (the database's, NULLs included)."""
    stored = {_stored(address) for address in addresses} - set(known.to_address)
    if not stored:
        return
    for address in stored:
        known.to_address[address], known.leads[address] = [], []
    for outbound in (OutboundEmail.objects.select_related("lead").filter(to_email__in=stored, status__in=CONTACTED)
                     .order_by("-sent_at", "-pk")):
        known.to_address[outbound.to_email].append(outbound)
    for lead in Lead.objects.filter(email__in=stored).order_by("-last_contacted_at", "-pk"):
        known.leads[lead.email].append(lead)


def _stored(address: str) -> str:
    # What the address fields store and compare (``LowercaseEmailField``).
    return address.strip().lower()


def thread_ids(in_reply_to: str, references: str) -> list[str]:
    """The Message-IDs a message's thread headers (as stored) name."""
    return _ids(in_reply_to, references)


def match_message(*, message: Message, mailbox_id: int, sender: str, in_reply_to: str, references: str,
                  failed_recipients: list[str], known: Known | None = None, signed: list[int] | None = None,
                  embedded: list[str] | None = None) -> Match:
    """Find what ``message`` answers. Costs a few indexed lookups; none for what ``known`` holds: our emails
    named by the message's thread headers, and by ``signed`` and ``embedded`` when given (the message's
    ``signed_outbound_ids`` and ``embedded_message_ids``, worked out with ``known``)."""
    signed_known = known if signed is not None else None
    signed = signed_outbound_ids(message) if signed is None else signed
    if signed:
        outbound = signed_known.latest(signed) if signed_known is not None else (
            OutboundEmail.objects.select_related("lead").filter(pk__in=signed).order_by("-pk").first())
        if outbound:
            return Match(outbound, outbound.lead, "return path")
    lead = token_lead(message)
    if lead is not None:
        # Signed with our secret for this lead alone: stronger than any header a client or a colleague's
        # forward may have set, and the sender need not be the lead's address at all.
        sent = (OutboundEmail.objects.select_related("lead").filter(lead=lead, status__in=CONTACTED)
                .order_by("-sent_at", "-pk"))
        return Match(sent.filter(mailbox_id=mailbox_id).first() or sent.first(), lead, "unsubscribe token")
    thread = _ids(in_reply_to, references)
    if thread:
        decided, outbound = known.thread(thread) if known is not None else (False, None)
        if not decided:
            outbound = (OutboundEmail.objects.select_related("lead").filter(message_id__in=thread)
                        .order_by("-step__position", "-pk").first())
        if outbound:
            return Match(outbound, outbound.lead, "thread")
    embedded_known = known if embedded is not None else None
    embedded = embedded_message_ids(message) if embedded is None else embedded
    if embedded:
        outbound = embedded_known.first(embedded) if embedded_known is not None else (
            OutboundEmail.objects.select_related("lead").filter(message_id__in=embedded).first())
        if outbound:
            return Match(outbound, outbound.lead, "original message")
    for address in failed_recipients:
        outbound = _latest_to(address.lower(), mailbox_id, known)
        if outbound:
            return Match(outbound, outbound.lead, "failed recipient")
    if sender:
        outbound = _latest_to(sender.lower(), mailbox_id, known)
        if outbound:
            return Match(outbound, outbound.lead, "sender")
        lead = _sender_lead(sender.lower(), known)
        if lead:
            return Match(None, lead, "sender")
    return Match(None, None, "")


def unproven(match: Match, *, failed_recipients: list[str]) -> str:
    """Why a bounce or complaint matched as ``match`` does not prove it is about an email we sent to
    its lead, for staff; ``""`` when it does.

    Proof is our signed return path or one of our Message-IDs, for an email to the address the report
    says failed (when it names any): a report of our email that names someone else is about a
    forwarding address, or was altered, and a person decides."""
    if match.how not in PROOFS:
        return ("unproven: it carries none of our Message-IDs and was not sent to our signed return path "
                f"(matched only by {match.how or 'nothing'})")
    if failed_recipients and match.outbound is not None:
        # Compared in every spelling an address may be stored under (a domain in Unicode or punycode).
        failed = {spelling for address in failed_recipients for spelling in address_spellings(address)}
        if failed.isdisjoint(address_spellings(match.outbound.to_email)):
            return (f"unproven: our email it names (by {match.how}) went to {match.outbound.to_email}, "
                    f"but it reports {', '.join(failed_recipients)}")
    return ""
