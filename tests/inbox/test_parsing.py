"""Reading raw messages into the stored fields, including messages that are not what they claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cam.inbox.parsing import ParsedMessage, clean_text, message_from_raw, parse_message
from cam.inbox.text import body_text, html_to_text


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def test_it_reads_the_headers():
    parsed = parse_message(crlf(
        "From: \"Dana Lead\" <Dana@Company.TEST>\n"
        "To: sender@outreach.test\n"
        "Subject: Re: Quick question\n"
        "Date: Tue, 04 Mar 2025 16:05:09 +0100\n"
        "Message-ID: <CAF=abc123@mail.company.test>\n"
        "In-Reply-To: <cam.42@outreach.test>\n"
        "References: <cam.41@outreach.test>\n"
        " <cam.42@outreach.test>\n"
        "\n"
        "Sounds good, let's talk on Thursday.\n"))

    assert parsed == ParsedMessage(
        message_id="<CAF=abc123@mail.company.test>",
        in_reply_to="<cam.42@outreach.test>",
        references="<cam.41@outreach.test> <cam.42@outreach.test>",
        from_email="dana@company.test",
        from_name="Dana Lead",
        subject="Re: Quick question",
        date=datetime(2025, 3, 4, 16, 5, 9, tzinfo=timezone(timedelta(hours=1))),
        text="Sounds good, let's talk on Thursday.",
    )


def test_it_decodes_encoded_words():
    parsed = parse_message(crlf(
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@firma.test>\n"
        "Subject: =?utf-8?b?QVc6IEvDvHJ6ZSBGcmFnZQ==?= =?iso-8859-1?q?_=FCber_Preise?=\n"
        "\n"
        "Hallo\n"))

    assert (parsed.from_name, parsed.from_email) == ("Jürgen Müller", "juergen@firma.test")
    assert parsed.subject == "AW: Kürze Frage über Preise"


def test_it_reads_the_body_from_html_when_there_is_no_plain_part():
    parsed = parse_message(crlf(
        "From: lead@company.test\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n'
        "\n"
        "--outer\n"
        'Content-Type: text/html; charset="iso-8859-1"\n'
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "<html><head><style>p {color: red}</style></head><body>\n"
        "<p>Gr=FC=DFe,</p><p>yes &amp; please<br>send the deck.</p>\n"
        "<script>track()</script></body></html>\n"
        "--outer\n"
        "Content-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="deck.pdf"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "JVBERi0xLjQK\n"
        "--outer--\n"))

    assert parsed.text == "Grüße,\n\nyes & please\nsend the deck."


def test_it_prefers_the_plain_part_of_an_alternative():
    parsed = parse_message(crlf(
        'Content-Type: multipart/alternative; boundary="b"\n'
        "\n"
        "--b\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "Plain words.\n"
        "--b\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        "<p>HTML words.</p>\n"
        "--b--\n"))

    assert parsed.text == "Plain words."


def test_it_reads_what_it_can_of_a_message_with_broken_headers():
    parsed = parse_message(
        b'From: "Unclosed quote <lead@company.test>\r\n'
        b"Subject: =?x-no-such-charset?q?caf=E9?= \xff\r\n"
        b"Date: the day before yesterday\r\n"
        b"Message-ID: bare-id@company.test\r\n"
        b"In-Reply-To: see my earlier mail\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"\r\n"
        b"Body in an unknown charset \xc3\xa9\x00.\r\n")

    assert parsed.message_id == "<bare-id@company.test>"
    assert parsed.in_reply_to == ""
    assert parsed.from_email == "lead@company.test"
    assert parsed.subject.startswith("caf")
    assert parsed.date is None
    assert parsed.text == "Body in an unknown charset é."
    assert any(problem.startswith("Date:") for problem in parsed.problems)


def test_it_reads_undeclared_8bit_text_as_utf8():
    parsed = parse_message("Subject: Grüße\r\nContent-Type: text/plain\r\n\r\nSí, me interesa.\r\n".encode())

    assert (parsed.subject, parsed.text) == ("Grüße", "Sí, me interesa.")


def test_it_reads_a_date_without_time_zone_as_utc():
    parsed = parse_message(b"Date: Mon, 3 Mar 2025 10:00:00 -0000\r\n\r\nhi\r\n")

    assert parsed.date == datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def test_it_reads_a_message_cut_short():
    whole = crlf(
        'Subject: Cut\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nThe reply itself.\n"
        "--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + "QUFB" * 500)

    parsed = parse_message(whole[:300])

    assert (parsed.subject, parsed.text) == ("Cut", "The reply itself.")


def test_it_reads_the_text_of_a_delivery_report():
    parsed = parse_message(crlf(
        "From: MAILER-DAEMON@mx.company.test\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n'
        "\n"
        "--r\n"
        "Content-Type: text/plain\n"
        "\n"
        "I'm sorry to have to inform you that your message could not be delivered.\n"
        "--r\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Final-Recipient: rfc822; gone@company.test\n"
        "Status: 5.1.1\n"
        "--r--\n"))

    assert parsed.from_email == "mailer-daemon@mx.company.test"
    assert parsed.text == "I'm sorry to have to inform you that your message could not be delivered."


def test_it_reads_bytes_that_are_not_a_message_without_failing():
    assert parse_message(b"") == ParsedMessage()
    parsed = parse_message(b"\x00\x01\xff\xfe binary junk")
    assert "\x00" not in parsed.text
    assert parsed.message_id == ""


def test_it_turns_html_into_lines():
    assert html_to_text("<div>One</div><div>Two&nbsp;words</div><ul><li>a</li><li>b</li></ul>") == (
        "One\n\nTwo words\n\na\n\nb")


def test_it_returns_only_what_a_database_can_store():
    parsed = parse_message(
        b"From: =?unicode_escape?q?\\ud800Lead?= <lead@company.test>\r\n"
        b"Subject: =?unicode_escape?q?\\ud800Hi?=\r\n"
        b"Date: Fri, 31 Dec 9999 23:00:00 -0500\r\n"
        b"Content-Type: text/plain; charset=unicode_escape\r\n"
        b"\r\n"
        b"\\ud800Yes\\x00 please.\r\n")

    assert (parsed.from_name, parsed.subject, parsed.text) == ("?Lead", "?Hi", "?Yes please.")
    assert parsed.date is None  # no UTC equivalent: 10000-01-01 04:00 UTC


CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda path: path.name)
def test_the_stored_body_is_the_body_the_classifier_reads(path):
    # One reading of the body for both: a reply is never stored with words other than those it was judged on.
    raw = path.read_bytes()
    stored = parse_message(raw).text
    classified = body_text(message_from_raw(raw))
    assert stored == clean_text(classified).strip()
