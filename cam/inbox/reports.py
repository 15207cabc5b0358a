"""The structure of the reports mail systems send back: delivery status reports, feedback reports, and the
copy of the original message they carry.

Shared by the readers of bounces (``cam.inbox.bounces``), of complaints and authentication-failure
reports (``cam.inbox.complaints``) and by matching (``cam.inbox.matching``), which finds our
Message-ID in the copy of the original.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

from cam.inbox.text import fold, header_addresses, html_to_text, is_text, leaf_parts, memoized, part_text

ORIGINAL_MARKER = re.compile(
    r"^.*(?:copy of (?:the|your) (?:original )?message|original message (?:follows|headers|details|below)|"
    r"-{2,} ?original message ?-{2,}|below (?:this line )?is a copy of the message|"
    r"returned (?:mail|message) (?:follows|below)|-{2,} ?returned (?:mail|message) ?-{2,}|start of returned message|"
    r"(?:original )?message headers? follows?|included is a copy of the message header|the text you sent follows|"
    r"unsent message (?:below|follows)|your message reads|original message headers:|header of the original message|"
    r"kopie der (?:ursprunglichen )?nachricht|kopie ihrer nachricht|-{2,} ?ursprungliche nachricht|"
    r"copie du message|-{2,} ?message d'origine|copia del mensaje|-{2,} ?mensaje original).*$", re.M)



def report_type(message: Message) -> str:
    return memoized(message, "report type", lambda: _report_type(message))


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    try:
        value = message.get_param("report-type")
        return value.lower() if isinstance(value, str) else ""
    except Exception:
        return ""


def _top_parts(message: Message) -> list[Message]:
    payload = message.get_payload() if message.is_multipart() else None
    return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []


def parts_of_type(message: Message, *types: str) -> list[Message]:
    """The parts of ``message`` of the given types, not looking inside attached messages."""
    return list(memoized(message, ("parts", *types), lambda: tuple(_parts_of_type(message, types))))


def _parts_of_type(message: Message, types: tuple[str, ...]) -> list[Message]:
    found: list[Message] = []

    def visit(part: Message) -> None:
        if part.get_content_type() in types:
            found.append(part)
            return
        if part.get_content_maintype() == "multipart":
            for child in _top_parts(part):
                visit(child)

    visit(message)
    return found


def _parse_blocks(text: str) -> list[Message]:
    parser = HeaderParser(policy=policy.compat32)
    return [parser.parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
            if block.strip()]


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or ``message/feedback-report`` part.

    The parser splits ``message/delivery-status`` into its blocks, but reads other types
    (``message/global-delivery-status``, a report sent as text) as one block followed by a body
    that holds the rest: those are split here.
    """
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks: list[Message] = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append(block)
                rest = block.get_payload()
                if isinstance(rest, str) and rest.strip():
                    blocks.extend(_parse_blocks(rest))
        return blocks
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else payload if isinstance(payload, str) else ""
    return _parse_blocks(text)


def is_feedback_report(message: Message) -> bool:
    return report_type(message) == "feedback-report" or bool(parts_of_type(message, "message/feedback-report"))


def original_headers(message: Message) -> Message | None:
    """The headers of the original message a bounce or feedback report carries, or ``None``.

    Read from an attached ``message/rfc822`` (or ``message/global``), a ``text/rfc822-headers``
    part, or the copy an MTA pasted below its text (“------ This is a copy of the message …”).
    """
    return memoized(message, "original headers", lambda: _original_headers(message))


def _original_headers(message: Message) -> Message | None:
    for part in parts_of_type(message, "message/rfc822", "message/global"):
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0]
    parser = HeaderParser(policy=policy.compat32)
    for part in parts_of_type(message, "text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header"):
        text = part_text(part) if not part.is_multipart() else ""
        if text.strip():
            return parser.parsestr(text.lstrip())
    for part in leaf_parts(message):
        if part.get_content_type() != "text/plain":
            continue
        text = part_text(part)
        marker = ORIGINAL_MARKER.search(fold(text))
        if marker is None:
            continue
        # fold() keeps the line structure, so the marker's line number finds the same place in the original.
        line_number = fold(text)[:marker.end()].count("\n") + 1
        rest = "\n".join(text.split("\n")[line_number:]).lstrip("\n")
        start = re.search(r"^[A-Za-z][\w-]*:[ \t]", rest, re.M)
        if start is not None:
            headers = parser.parsestr(rest[start.start():])
            if headers.get("To") or headers.get("From") or headers.get("Message-ID"):
                return headers
    return None


def original_addresses(original: Message | None, name: str) -> list[str]:
    return header_addresses(original, name) if original is not None else []


def report_text(message: Message) -> str:
    """The report's own text (folded): its text parts, without any copy of the original message."""
    texts: list[str] = []
    for part in leaf_parts(message):
        if not is_text(part) or part.get_content_type() == "text/rfc822-headers":
            continue
        text = part_text(part)
        if part.get_content_subtype() == "html":
            text = html_to_text(text)
        folded = fold(text)
        marker = ORIGINAL_MARKER.search(folded)
        texts.append(folded[:marker.start()] if marker else folded)
        if len(texts) >= 2:  # the plain and HTML forms of the same report, at most
            break
    return "\n\n".join(texts)
