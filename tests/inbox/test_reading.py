"""The classifier's reading of a message (``message_from_raw_for_reading``: compat32, header values read as the
default policy reads them, a memo of what the readers ask) against the default policy's message
(``message_from_raw``): the same classification, field for field, and the same ids for matching."""

from __future__ import annotations

import datetime
from email.message import Message
from pathlib import Path

import pytest

from cam.inbox.classify import classify_message
from cam.inbox.matching import embedded_message_ids, signed_outbound_ids
from cam.inbox.parsing import message_from_raw, message_from_raw_for_reading
from tests.inbox.test_parsing import TRICKY, crlf

CORPUS = Path(__file__).parent / "corpus"
TODAY = datetime.date(2026, 12, 4)

# Beyond the corpus: what a real inbox also holds, in the shapes the two readings could tell apart.
MORE = [
    crlf("From: \"Doe, Jane\" <jane@company.test>\nTo: =?utf-8?q?Vertrieb_M=C3=BCller?= <sales@outreach.test>\n"
         "Subject: =?utf-8?q?AW:_Abmeldung_bitte?=\nContent-Type: text/plain; charset=\"utf-8\"\n"
         "Content-Transfer-Encoding: 8bit\n\nBitte tragen Sie mich aus Ihrem Verteiler aus.\n"),
    crlf("From: Mail Delivery System <MAILER-DAEMON@mx.company.test>\nTo: bounce@outreach.test\n"
         "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n"
         "Content-Type: multipart/report; report-type=\"delivery-status\";\n\tboundary=\"b1\"\n\n"
         "--b1\nContent-Type: text/plain\n\nI'm sorry: <gone@company.test>: 550 5.1.1 User unknown\n"
         "--b1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.company.test\n\n"
         "Final-Recipient: rfc822; gone@company.test\nAction: failed\nStatus: 5.1.1\n"
         "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--b1\nContent-Type: message/rfc822\n\n"
         "From: us@outreach.test\nTo: gone@company.test\nMessage-ID: <cam.1@outreach.test>\n"
         "Return-Path: <b+1.abc@outreach.test>\nSubject: Hi\n\nHello\n--b1--\n"),
    crlf("From: anna@company.test\nSubject: Out of office (comment) until 12/24\nX-Autoreply: yes\n"
         "Content-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
         "<p>Ich bin bis zum 24.12. nicht im B=FCro. Bitte wenden Sie sich an <b>max@company.test</b>.</p>\n"),
    "From: Jörg <j@example.test>\r\nSubject: Ja, gerne — rufen Sie mich an\r\n"
    "Content-Type: text/plain; charset*=utf-8''%C3%A9\r\n\r\nJa, gerne. Grüße\r\n".encode(),
]
SAMPLES = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))] + TRICKY + MORE
IDS = [path.name for path in sorted(CORPUS.glob("*.eml"))] + [f"tricky-{n}" for n in range(len(TRICKY))] + \
    [f"more-{n}" for n in range(len(MORE))]


def _parts(message: Message) -> list[Message]:
    return list(message.walk())


@pytest.mark.parametrize("raw", SAMPLES, ids=IDS)
def test_the_classifier_reads_a_message_as_it_read_the_default_policys(raw):
    # Every field the classifier gives: category, confidence, reasons, recipients, codes, dates, referral, text.
    old = classify_message(message_from_raw(raw.replace(b"\x00", b"")), today=TODAY)
    new = classify_message(raw, today=TODAY)
    assert new == old
    assert classify_message(message_from_raw_for_reading(raw), today=TODAY) == old


@pytest.mark.parametrize("raw", SAMPLES, ids=IDS)
def test_matching_reads_the_same_ids(raw):
    old, new = message_from_raw(raw), message_from_raw_for_reading(raw)
    assert embedded_message_ids(new) == embedded_message_ids(old)
    assert signed_outbound_ids(new) == signed_outbound_ids(old)


@pytest.mark.parametrize("raw", SAMPLES, ids=IDS)
def test_every_part_reads_as_the_default_policys(raw):
    # The same parts, and in each the same header text, types, parameters, charsets and payloads: what the
    # readers (ours, flufl.bounce's) ask of a message.
    old_parts, new_parts = _parts(message_from_raw(raw)), _parts(message_from_raw_for_reading(raw))
    assert len(new_parts) == len(old_parts)
    for old, new in zip(old_parts, new_parts, strict=True):
        assert new.items() == [(name, str(value)) for name, value in old.items()]
        for name in {name.lower() for name in old} | {"content-type", "x-missing"}:
            assert new.get(name) == (None if old.get(name) is None else str(old.get(name)))
            assert new.get_all(name) == (None if old.get_all(name) is None else
                                         [str(value) for value in old.get_all(name)])
        assert (new.get_content_type(), new.get_params(), new.get_content_charset(), new.get_filename()) == \
            (old.get_content_type(), old.get_params(), old.get_content_charset(), old.get_filename())
        assert new.is_multipart() == old.is_multipart()
        if not new.is_multipart():
            assert new.get_payload(decode=True) == old.get_payload(decode=True)


def test_a_plain_header_is_read_as_written_and_any_other_through_the_default_policy():
    message = message_from_raw_for_reading(crlf(
        "X-Plain:  two  spaces (and a comment)\nX-Encoded: =?utf-8?q?caf=C3=A9?=\n"
        "To: \"Doe, Jane\"  <j@x.test>\n\nx\n"))
    assert message["X-Plain"] == "two  spaces (and a comment)"
    assert message["X-Encoded"] == "café"
    assert message["To"] == "\"Doe, Jane\" <j@x.test>"
