"""Messages built to exhaust the parser — thousands of nested parts, or of parts side by side — are read
as far as the limits allow and classified on what was read, through every door the inbox has."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from cam.inbox.classify import classify_message
from cam.inbox.parsing import MAX_MIME_DEPTH, MAX_MIME_PARTS, parse_message
from cam.inbox.processing import replies_process
from cam.models import InboundEmail
from tests.factories import InboundEmailFactory, LeadFactory

REPLY = "Yes, I am interested. Let's talk next week."
HEAD = "From: Anna Schmidt <anna@brightlane.test>\r\nTo: alex@outreach.test\r\nSubject: Re: hello\r\n" \
       "MIME-Version: 1.0\r\n"


def nested_multiparts(depth: int, *, top: str | None = REPLY, bottom: str = "deep down") -> bytes:
    """A reply whose first part is its text (``top``; none if None) and whose next part opens
    multiparts one in the other until the text part ``bottom`` sits ``depth`` levels down."""
    first = f"--b0\r\nContent-Type: text/plain\r\n\r\n{top}\r\n" if top is not None else ""
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(1, depth))
    closing = "".join(f"--b{n}--\r\n" for n in reversed(range(1, depth)))
    return (HEAD + 'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            f"{first}--b0\r\n{opening}Content-Type: text/plain\r\n\r\n{bottom}\r\n{closing}--b0--\r\n").encode()


def nested_messages(depth: int) -> bytes:
    """A reply that forwards a message that forwards a message …, ``depth`` times."""
    inner = "Content-Type: message/rfc822\r\n\r\n" * depth + "Subject: bottom\r\n\r\ndeep down\r\n"
    return (HEAD + 'Content-Type: multipart/mixed; boundary="top"\r\n\r\n'
            f"--top\r\nContent-Type: text/plain\r\n\r\n{REPLY}\r\n"
            f"--top\r\n{inner}--top--\r\n").encode()


def many_parts(count: int) -> bytes:
    parts = "".join(f"--p\r\nContent-Type: application/octet-stream\r\n\r\n{n}\r\n" for n in range(count))
    return (HEAD + 'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
            f"--p\r\nContent-Type: text/plain\r\n\r\n{REPLY}\r\n{parts}--p--\r\n").encode()


@pytest.mark.parametrize("raw", [nested_multiparts(3000), nested_messages(3000)], ids=["multipart", "message"])
def test_it_reads_the_text_above_a_structure_nested_thousands_of_levels_deep(raw):
    parsed = parse_message(raw)

    assert parsed.text == REPLY
    assert parsed.subject == "Re: hello"
    assert parsed.problems == (f"parts nested more than {MAX_MIME_DEPTH} levels deep were not read",)


def test_it_reads_the_text_as_deep_as_the_limit_and_no_deeper():
    at_limit = parse_message(nested_multiparts(MAX_MIME_DEPTH, top=None, bottom=REPLY))
    below = parse_message(nested_multiparts(MAX_MIME_DEPTH + 1, top=None, bottom=REPLY))

    assert (at_limit.text, at_limit.problems) == (REPLY, ())
    assert (below.text, below.problems) == ("", (f"parts nested more than {MAX_MIME_DEPTH} levels deep were not "
                                                 f"read",))


def test_it_reads_no_more_than_the_part_limit_of_a_message_with_thousands_of_parts():
    parsed = parse_message(many_parts(5000))

    assert parsed.text == REPLY
    assert parsed.problems == (f"only the first {MAX_MIME_PARTS} parts were read; {5001 - MAX_MIME_PARTS} more "
                               f"were left out",)


@pytest.mark.parametrize("raw", [nested_multiparts(3000), nested_messages(3000), many_parts(5000)],
                         ids=["multipart", "message", "parts"])
def test_it_classifies_such_a_message_on_what_it_could_read(raw):
    result = classify_message(raw)

    assert result.category == InboundEmail.Category.POSITIVE
    assert result.new_text == REPLY
    assert any("not read" in reason or "left out" in reason for reason in result.reasons)


def test_it_shows_how_it_read_such_a_file_in_the_classify_command(tmp_path):
    path = tmp_path / "deep.eml"
    path.write_bytes(nested_multiparts(3000))
    out = io.StringIO()

    call_command("cam_classify", str(path), "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["category"] == "POSITIVE"
    assert f"parts nested more than {MAX_MIME_DEPTH} levels deep were not read" in result["reasons"]


@pytest.mark.django_db
def test_it_processes_a_stored_reply_nested_thousands_of_levels_deep():
    lead = LeadFactory(email="anna@brightlane.test")
    inbound = InboundEmailFactory(raw_message=nested_multiparts(3000), from_email="anna@brightlane.test",
                                  new_text="")

    assert replies_process() == {"processed": 1, "errors": 0, "positive": 1}

    inbound.refresh_from_db()
    assert (inbound.category, inbound.lead, inbound.new_text) == ("POSITIVE", lead, REPLY)
