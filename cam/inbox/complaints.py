"""Feedback reports: complaints about our email, and reports that a message failed authentication.

A complaint is a recipient marking our email as spam, sent back by their mailbox provider's feedback
loop. It is read in the shapes the providers send:

- an RFC 5965 feedback report (``multipart/report; report-type=feedback-report`` with a
  ``message/feedback-report`` part): Yahoo, AOL, Comcast, Mail.ru, Yandex, the feedback loops run by
  Validity (Return Path) for Terra, Rackspace, Bluetie and others, Abusix …;
- the same fields sent as plain text (a ``Feedback-Type:`` line in a text part) by a feedback loop
  that does not build the MIME report;
- Microsoft's JMRP and the Outlook.com feedback loop (“complaint about message from …”, sent by
  ``staff@hotmail.com``): no report part at all, the original message attached as
  ``message/rfc822`` with the recipient in its ``X-HmXmrOriginalRecipient`` header;
- other feedback loops that attach the original under an abuse-report subject from a feedback-loop
  address (``feedbackloop@…``, ``fbl@…``, ``scomp@…``);
- Amazon SES complaint notifications (JSON in the body): ``cam.inbox.ses``.

The complaining recipient comes, in order of trust, from ``Original-Rcpt-To``, ``Removal-Recipient``
(RFC 5965's "take this address off the list"), the original's ``X-HmXmrOriginalRecipient``, or the
original's ``To``. Feedback loops often hide it: a hashed local
part (``5e9e489a…@example.com``), ``redacted``, ``undisclosed recipients``, or the whole original
replaced by ``REDACTED``. A hidden address names nobody and is dropped; the report then names no
recipient here, and processing takes it from our Message-ID in the included original (our
OutboundEmail, hence its lead and address; ``cam.inbox.processing``).

An RFC 6591 authentication-failure report (``Feedback-Type: auth-failure``, the DMARC “forensic”
report) is not a person's complaint: it says a message claiming a domain failed SPF, DKIM or DMARC at
the receiver. It is told apart (``auth_failure``) with the domain it reports, so the sending domain's
health can count it (``cam.domains.auth_reports``) and no lead is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import HeaderParser

from cam.inbox.reports import header_blocks, original_addresses, original_headers, parts_of_type, report_type
from cam.inbox.text import ADDRESS, fold, header, header_addresses, is_text, leaf_parts, part_text, sender_address

AUTH_FAILURE = "auth-failure"
# Feedback types that are not a recipient's complaint (RFC 5965, 7.3): "not-spam" takes one back.
NOT_COMPLAINTS = ("not-spam",)

# A local part that hides the recipient: a hash, x's or stars, or a word saying so.
_HIDDEN = re.compile(r"^(?:[0-9a-f]{16,}|x{3,}|\*+|redacted|hashed|removed|hidden|anonymi[sz]ed|"
                     r"undisclosed[-\w.]*|unknown-recipient)$")
_FBL_SENDER = re.compile(r"^(?:staff@hotmail\.com|feedback-?loop@.*|fbl[-\w.]*@.*|[-\w.]*@[-\w.]*\bfbl\b[-\w.]*|"
                         r"scomp@.*|complaints?@.*|abuse-?(?:report|feedback)s?@.*|arf@.*|spam-?reports?@.*)$")
_COMPLAINT_SUBJECT = re.compile(r"complaint about message|abuse report|spam report|spam complaint|feedback loop|"
                                r"\bfbl\b|email feedback report|complaint notification")
_FEEDBACK_FIELD = re.compile(r"^feedback-type:\s*([\w-]+)", re.M | re.I)
_HEADER_FROM = re.compile(r"header\.from=([\w.-]+\.[a-z]{2,})", re.I)


@dataclass(frozen=True)
class Complaint:
    recipients: list[str]
    feedback_type: str
    confidence: float
    reasons: list[str] = field(default_factory=list)
    reported_domain: str = ""  # for an authentication-failure report: the domain that failed

    @property
    def auth_failure(self) -> bool:
        return self.feedback_type == AUTH_FAILURE


def is_hidden(address: str) -> bool:
    """Is ``address`` a feedback loop's stand-in for the recipient rather than the recipient?"""
    local = address.partition("@")[0].lower()
    return bool(_HIDDEN.match(local)) or "redacted" in address.lower()


def _arf_fields(message: Message) -> dict[str, list[str]]:
    """The fields of the feedback report: from its ``message/feedback-report`` part, or from a text part
    that holds them when the loop sent them as plain text. Repeated fields keep every value."""
    blocks = [block for part in parts_of_type(message, "message/feedback-report") for block in header_blocks(part)]
    if not blocks:
        for part in leaf_parts(message):
            if is_text(part) and _FEEDBACK_FIELD.search(text := part_text(part)):
                blocks = _text_blocks(text)
                break
    fields: dict[str, list[str]] = {}
    for block in blocks:
        for name, value in block.items():
            fields.setdefault(name.lower(), []).append(" ".join(str(value).split()))
    return fields


def _text_blocks(text: str) -> list[Message]:
    """The report's fields written in a text part: the paragraph that holds ``Feedback-Type:`` and what follows."""
    text = text.replace("\r\n", "\n")
    start = _FEEDBACK_FIELD.search(text)
    begin = text.rfind("\n\n", 0, start.start()) + 1 if start else 0
    return [HeaderParser(policy=policy.compat32).parsestr(text[begin:].lstrip())]


def _visible(addresses: list[str]) -> tuple[list[str], list[str]]:
    """(the addresses that name someone, the hidden ones)."""
    return ([address for address in addresses if not is_hidden(address)],
            [address for address in addresses if is_hidden(address)])


def _without_arf(message: Message, original: Message | None) -> str:
    """Why ``message`` is a feedback loop's complaint that carries no ARF report part; ``""`` when it is not."""
    if original is None:
        return ""
    sender = sender_address(message)
    subject = fold(header(message, "Subject"))
    from_a_loop = bool(_FBL_SENDER.match(sender))
    # Microsoft's loop sends from staff@hotmail.com under "complaint about message from <IP>"; a person
    # forwarding mail as an attachment sends neither.
    if header(original, "X-HmXmrOriginalRecipient") and (from_a_loop or _COMPLAINT_SUBJECT.search(subject)):
        return "a Microsoft JMRP / Outlook.com feedback-loop report (X-HmXmrOriginalRecipient)"
    if from_a_loop and _COMPLAINT_SUBJECT.search(subject):
        return f"a feedback-loop report from {sender} ({header(message, 'Subject').strip()!r})"
    return ""


def detect_complaint(message: Message) -> Complaint | None:
    """The complaint or authentication-failure report ``message`` is, or ``None``."""
    is_report = report_type(message) == "feedback-report" or bool(parts_of_type(message, "message/feedback-report"))
    fields = _arf_fields(message) if is_report or _FBL_SENDER.match(sender_address(message)) else {}
    attached = bool(parts_of_type(message, "message/rfc822", "message/global"))
    if not (is_report or fields.get("feedback-type") or attached):
        return None  # a report carries the fields or the original: most messages have neither
    original = original_headers(message)
    if is_report or fields.get("feedback-type"):
        feedback_type = (fields.get("feedback-type") or ["abuse"])[0].lower() or "abuse"
        reasons = [f"a feedback report (Feedback-Type: {feedback_type})"]
    else:
        why = _without_arf(message, original)
        if not why:
            return None
        feedback_type, reasons = "abuse", [why]
    if feedback_type in NOT_COMPLAINTS:
        return None
    if fields.get("user-agent"):
        reasons.append(f"from {fields['user-agent'][0]}")
    if feedback_type == AUTH_FAILURE:
        return _auth_failure(fields, original, reasons)

    sources = [("Original-Rcpt-To", _field_addresses(fields, "original-rcpt-to")),
               # RFC 5965, 3.3: the recipient the reporter asks to be taken off the list.
               ("Removal-Recipient", _field_addresses(fields, "removal-recipient")),
               ("the original's X-HmXmrOriginalRecipient",
                header_addresses(original, "X-HmXmrOriginalRecipient") if original is not None else []),
               ("the original message's To", original_addresses(original, "To"))]
    recipients: list[str] = []
    for name, found in sources:
        recipients, hidden = _visible(found)
        if hidden:
            reasons.append(f"{name} is hidden ({', '.join(hidden[:3])}{' …' if len(hidden) > 3 else ''})")
        if recipients:
            reasons.append(f"complaining recipient {', '.join(recipients)} ({name})")
            break
    if not recipients:
        reasons.append("the complaining recipient is not named (redacted or missing): our Message-ID in the "
                       "original names the email, and so its address")
    return Complaint(recipients=recipients, feedback_type=feedback_type, confidence=0.99 if recipients else 0.9,
                     reasons=reasons)


def _field_addresses(fields: dict[str, list[str]], name: str) -> list[str]:
    """The addresses a report field names, lower-cased, each once, in order."""
    named: list[str] = []
    for value in fields.get(name, []):
        named += [address.lower() for address in ADDRESS.findall(value) if address.lower() not in named]
    return named


def _auth_failure(fields: dict[str, list[str]], original: Message | None, reasons: list[str]) -> Complaint:
    failure = ", ".join(fields.get("auth-failure", [])) or "not said"
    domain = next((value.strip().lower().strip(".") for value in fields.get("reported-domain", []) if value.strip()),
                  "")
    source = "Reported-Domain"
    if not domain:
        found = _HEADER_FROM.search(" ".join(fields.get("authentication-results", [])))
        domain, source = (found.group(1).lower(), "Authentication-Results") if found else ("", "")
    if not domain:
        senders = original_addresses(original, "From")
        domain, source = (senders[0].partition("@")[2], "the original message's From") if senders else ("", "")
    reasons.append(f"an authentication-failure report (Auth-Failure: {failure}), not a person's complaint")
    reasons.append(f"reported domain {domain} ({source})" if domain else "the reported domain is not named")
    if fields.get("source-ip"):
        reasons.append(f"sent from {fields['source-ip'][0]}")
    return Complaint(recipients=[], feedback_type=AUTH_FAILURE, confidence=0.98 if domain else 0.9, reasons=reasons,
                     reported_domain=domain[:253])
