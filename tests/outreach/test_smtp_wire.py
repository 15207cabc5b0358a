"""The bytes and envelope addresses the SMTP provider sends are the ones Django's SMTP backend would send."""

from email.policy import compat32

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address
from hypothesis import example, given
from hypothesis import strategies as st

from cam.outreach.providers.smtp_wire import _PLAIN_ADDRESS, _SMTP_POLICY, envelope_address, mime_bytes

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


@given(name=HEADER_NAMES, value=HEADER_TEXT)
@example(name="Subject", value="x" * 69)  # exactly fills the line
@example(name="Subject", value="x" * 70)  # one more: folded
@example(name="Subject", value="trailing space ")
@example(name="Subject", value="  leading and  inner  spaces")
def test_it_writes_a_header_as_the_email_package_does(name, value):
    assert outcome(_SMTP_POLICY.fold_binary, name, value) == outcome(DJANGO_SMTP_POLICY.fold_binary, name, value)


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
