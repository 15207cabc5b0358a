"""The bytes and envelope addresses the SMTP provider sends are the ones Django's SMTP backend would send."""

import re
import smtplib
from collections.abc import Callable
from email.policy import compat32

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address
from hypothesis import example, given
from hypothesis import strategies as st

from cam.outreach.providers.smtp_wire import (
    _PLAIN_ADDRESS,
    _SMTP_POLICY,
    _written,
    envelope_address,
    message_bytes,
    mime_bytes,
    smtp_path,
)

DJANGO_SMTP_POLICY = compat32.clone(linesep="\r\n")
HEADER_NAMES = st.sampled_from(["To", "Subject", "Message-ID", "List-Unsubscribe", "X-A-Rather-Long-Header-Name"])
# Mostly printable ASCII (the fast way), with the white space, controls and letters that are not.
HEADER_TEXT = st.text(st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                st.sampled_from(" \t\x0b\x85é€;,")), max_size=120)


def outcome(fold, name, value) -> bytes | type[Exception]:
    try:
        return fold(name, value)
    except Exception as exc:  # a value the email package refuses (a line break that starts a header) …
        return type(exc)  # … is refused alike


# Long values with many places to fold at, or few.
FOLDABLE_TEXT = st.lists(st.one_of(st.sampled_from("ab<>@.:"), st.sampled_from(" \t;,"), st.just("x" * 30)),
                         max_size=80).map("".join)


@given(name=HEADER_NAMES, value=HEADER_TEXT | FOLDABLE_TEXT)
@example(name="Subject", value="x" * 69)  # exactly fills the line
@example(name="Subject", value="x" * 70)  # one more: folded
@example(name="Subject", value="trailing space ")
@example(name="Subject", value="  leading and  inner  spaces")
@example(name="List-Unsubscribe", value="<https://cam.example.com/u/MQ:6v38NVhge4qpIz7T3nJkZByvr4sQYCgTldVHnO6-90w/>, "
                                        "<mailto:alex@outreach.example.com?subject=unsubscribe%20MQ:6v38NVhge4q>")
@example(name="References", value=" ".join(f"<{n}.a-long-message-id@outreach.example.com>" for n in range(6)))
@example(name="X-A-Rather-Long-Header-Name", value="x" * 90 + " y")
@example(name="Subject", value="x" * 70 + " ")  # a space at the end
@example(name="Subject", value="\t" + "x; " * 40)
@example(name="Subject", value=f"{'x' * 20}; {'x' * 20}, {'x' * 30}")  # after the semicolon rather than the comma
def test_it_writes_a_header_as_the_email_package_does(name, value):
    assert outcome(_SMTP_POLICY.fold_binary, name, value) == outcome(DJANGO_SMTP_POLICY.fold_binary, name, value)


@given(address=st.one_of(st.from_regex(_PLAIN_ADDRESS, fullmatch=True),
                         st.emails().map(str),
                         st.sampled_from(["Anna <anna@example.com>", "anna@bücher.example", "\"a b\"@example.com",
                                          "a..b@example.com", f"a@{'x' * 64}.example.com"])))
def test_it_quotes_an_envelope_address_as_smtplib_does(address):
    assert smtp_path(address) == smtplib.quoteaddr(address)


@given(address=st.one_of(st.from_regex(_PLAIN_ADDRESS, fullmatch=True),
                         st.emails().map(str),
                         st.sampled_from(["Anna <anna@example.com>", "anna@bücher.example", "\"a b\"@example.com",
                                          "a..b@example.com", f"a@{'x' * 64}.example.com"])))
def test_it_gives_the_envelope_address_django_would_or_refuses_it_alike(address):
    try:
        expected = sanitize_address(address, "utf-8")
    except ValueError:
        with pytest.raises(ValueError):
            envelope_address(address, "utf-8")
    else:
        assert envelope_address(address, "utf-8") == expected


def message(**fields) -> EmailMultiAlternatives:
    values = {"subject": "Brightlane and fewer hand-offs", "body": "Hi Anna,\n\nquick question.\n",
              "from_email": "Alex Sender <alex@outreach.example.com>", "to": ["anna@brightlane.example.com"],
              **fields}
    headers = {"Message-ID": "<3f2a9c@outreach.example.com>", "Date": "Wed, 02 Dec 2026 10:49:04 -0000",
               "List-Unsubscribe": "<https://cam.example.com/u/MQ:6v38NVhge4qpIz7T3nJkZByvr4sQYCgTldVHnO6-90w/>, "
                                   "<mailto:alex@outreach.example.com?subject=unsubscribe%20MQ:6v38>",
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", **values.pop("headers", {})}
    html = values.pop("html", "")
    built = EmailMultiAlternatives(headers=headers, **values)
    if html:
        built.attach_alternative(html, "text/html")
    return built


@pytest.mark.parametrize("fields", [
    {},
    {"html": "<p>Hi Anna</p>"},
    {"subject": "Re: Müller & Söhne — fewer hand-offs"},
    {"subject": "A subject long enough that the email package has to fold it onto a second line, and more"},
    {"from_email": "Seán Ó Briain <sean@outreach.example.com>", "reply_to": ["Équipe <team@outreach.example.com>"]},
    {"body": "Grüße,\n" + "x" * 1200 + "\n"},  # a line over 998 bytes: quoted-printable
    {"headers": {"In-Reply-To": "<1@outreach.example.com>",
                 "References": " ".join(f"<{n}@outreach.example.com>" for n in range(8))}},
], ids=["plain", "html", "non-ascii-subject", "long-subject", "non-ascii-names", "long-line", "thread"])
def test_it_sends_the_bytes_djangos_smtp_backend_would_send(fields):
    mime = message(**fields).message()  # once: a multipart message gets its random boundary here
    assert mime_bytes(mime) == mime.as_bytes(linesep="\r\n")


# The random parts of a message Django makes: the multipart boundary, and the Date and Message-ID a
# message without them is given when it is made.
BOUNDARY = re.compile(rb"===============\d{19}==(?:\.\d+)?")
MADE_NOW = re.compile(rb"^(Date|Message-ID): .*\r\n", re.MULTILINE)


def sent(made: Callable[[], bytes]) -> bytes | type[Exception]:
    try:
        data = made()
    except Exception as exc:  # a message Django refuses …
        return type(exc)  # … is refused alike
    return MADE_NOW.sub(rb"\1: (made now)\r\n", BOUNDARY.sub(b"(boundary)", data))


def assert_sent_as_django_would(built: EmailMultiAlternatives) -> None:
    assert sent(lambda: message_bytes(built)) == sent(lambda: built.message().as_bytes(linesep="\r\n"))


@pytest.mark.parametrize("fields", [
    {},
    {"html": "<p>Hi Anna</p>"},
    {"html": "<p>Hi Anna</p>\n", "body": ""},  # the HTML alone
    {"body": ""},
    {"subject": ""},
    {"subject": "Re: Müller & Söhne — fewer hand-offs"},
    {"subject": "A subject long enough that the email package has to fold it onto a second line, and more"},
    {"subject": "x" * 69},
    {"subject": "x" * 70},
    {"from_email": "Seán Ó Briain <sean@outreach.example.com>", "reply_to": ["Équipe <team@outreach.example.com>"]},
    {"to": ["anna@brightlane.example.com", "Ben <ben@brightlane.example.com>"], "cc": ["c@brightlane.example.com"]},
    {"body": "Grüße,\r\nzwei\rdrei\n\nvier\u2028fünf\x0bsechs", "html": "<p>Grüße</p>\r\n"},
    {"headers": {"In-Reply-To": "<1@outreach.example.com>",
                 "References": " ".join(f"<{n}@outreach.example.com>" for n in range(8))}},
    {"headers": {"From": "Alex <alex@outreach.example.com>", "To": "Someone <anna@brightlane.example.com>"}},
    {"headers": {"Date": None, "Message-ID": None}},  # made now, as Django makes them
    {"subject": "two\nlines"},  # refused: a header may not hold a line break
    {"headers": {"X-Note": "a\r\nBcc: someone@example.com"}},  # refused alike
    {"body": "\udc80 not UTF-8"},  # refused alike
], ids=["plain", "html", "html-alone", "empty-body", "empty-subject", "non-ascii-subject", "long-subject",
        "subject-fills-line", "subject-one-over", "non-ascii-names", "recipients", "line-ends", "thread",
        "from-and-to-headers", "no-date-or-id", "subject-line-break", "header-injection", "surrogate-body"])
def test_it_writes_the_message_as_django_makes_it(fields):
    headers = fields.pop("headers", {})
    built = message(**fields, headers={name: value for name, value in headers.items() if value is not None})
    for name, value in headers.items():
        if value is None:
            del built.extra_headers[name]
    assert_sent_as_django_would(built)


@pytest.mark.parametrize("fields", [{}, {"html": "<p>Hi Anna</p>"}, {"subject": "Ein Grüß"}], ids=str)
def test_the_messages_the_sender_builds_are_written_directly(fields):
    assert _written(message(**fields)) is not None


def test_any_other_message_is_made_by_django():
    long_line = message(body="x" * 1200)  # quoted-printable
    latin = message()
    latin.encoding = "iso-8859-1"
    attached = message()
    attached.attach("note.txt", "hello", "text/plain")
    mixed = message(html="<p>Hi</p>")
    mixed.attach_alternative(b"%PDF", "application/pdf")

    class Custom(EmailMultiAlternatives):
        pass

    custom = Custom(subject="Hi", body="Hi", from_email="a@example.com", to=["b@example.com"])
    for other in (long_line, latin, attached, mixed, custom):
        assert _written(other) is None
        assert_sent_as_django_would(other)


TEXT = st.text(st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                         st.sampled_from(" \t\r\n\x0b\x85é€—;,<>@\"")), max_size=160)
ADDRESS = st.sampled_from(["anna@brightlane.example.com", "Anna Bell <anna@brightlane.example.com>",
                           "Ánna Béll <anna@brightlane.example.com>", "\"Bell, Anna\" <anna@brightlane.example.com>"])


@given(subject=TEXT, body=TEXT | st.text(max_size=2000), html=st.none() | TEXT, sender=ADDRESS,
       to=st.lists(ADDRESS, min_size=1, max_size=3), reply_to=st.lists(ADDRESS, max_size=2),
       extra=st.dictionaries(st.sampled_from(["In-Reply-To", "References", "X-Campaign", "Date", "Message-ID"]),
                             TEXT, max_size=3))
@example(subject="Hi", body="x" * 999, html=None, sender="a@example.com", to=["b@example.com"], reply_to=[], extra={})
@example(subject="Hi", body="é" * 499 + "\n", html="", sender="a@example.com", to=["b@example.com"], reply_to=[],
         extra={})
def test_any_message_is_sent_as_django_would_send_it(subject, body, html, sender, to, reply_to, extra):
    built = EmailMultiAlternatives(subject=subject, body=body, from_email=sender, to=to, reply_to=reply_to,
                                   headers=extra)
    if html is not None:
        built.attach_alternative(html, "text/html")
    assert_sent_as_django_would(built)
