"""Cleaning one mapped record into lead fields, or the reason it cannot become a lead."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cam.models import Lead
from cam.pipeline.records import (
    MAX_COMPANY_SIZE,
    RejectedRecord,
    _plain_url,
    _single_spaced,
    _validate_url,
    clean_record,
    parse_company_size,
)


def test_it_cleans_a_full_record_into_lead_fields():
    record = clean_record({
        "email": " Anna@ACME-GmbH.de ", "first_name": " Anna ", "last_name": "Schmidt", "company": "ACME  GmbH",
        "title": "CTO", "industry": "Software", "country": "DE", "company_size": "1,200",
        "website": "acme-gmbh.de", "timezone": "europe/berlin",
    })

    assert record.address.email == "anna@acme-gmbh.de"
    assert record.fields == {
        "first_name": "Anna", "last_name": "Schmidt", "company": "ACME GmbH", "title": "CTO",
        "industry": "Software", "country": "DE", "company_size": 1200, "website": "https://acme-gmbh.de",
        "timezone": "Europe/Berlin",
    }


def test_it_leaves_out_fields_the_record_does_not_have():
    assert clean_record({"email": "anna@acme-gmbh.de"}).fields == {}


def test_it_flags_role_and_free_mail_addresses_on_the_record():
    record = clean_record({"email": "info@gmail.com"})

    assert (record.address.is_role_account, record.address.is_free_mail) == (True, True)


def test_it_rejects_a_record_with_an_invalid_address_with_the_reason():
    with pytest.raises(RejectedRecord, match=r"^invalid email 'anna\(at\)acme-gmbh.de': .*@-sign"):
        clean_record({"email": "anna(at)acme-gmbh.de", "company": "ACME"})


def test_it_rejects_a_record_without_an_address():
    with pytest.raises(RejectedRecord, match=r"^no email address$"):
        clean_record({"company": "ACME"})


@pytest.mark.parametrize(("raw", "size"), [
    (250, 250), ("250", 250), (" 250 ", 250), ("1,200", 1200), ("1.200", 1200), ("1 200", 1200),
    ("1'200", 1200), ("51-200", 125), ("51 – 200", 125), ("10 to 50", 30), ("500+", 500), ("0", 0),
    (MAX_COMPANY_SIZE, MAX_COMPANY_SIZE), ("", None), (None, None),
])
def test_it_reads_company_size_in_the_forms_people_write_it(raw, size):
    assert parse_company_size(raw) == size
    assert clean_record({"email": "anna@acme-gmbh.de", "company_size": raw}).fields["company_size"] == size


@pytest.mark.parametrize(("raw", "reason"), [
    ("12.5", "company_size '12.5' is not a whole number"),
    (12.5, "company_size 12.5 is not a whole number"),
    ("-5", "company_size '-5' is not a whole number"),
    (-5, "company_size '-5' is not between 0 and 10,000,000"),
    ("about fifty", "company_size 'about fifty' is not a whole number"),
    (True, "company_size True is not a whole number"),
    (10_000_001, "company_size '10000001' is not between 0 and 10,000,000"),
    ("10,000,001", "company_size '10,000,001' is not between 0 and 10,000,000"),
    ("12,34", "company_size '12,34' is not a whole number"),
])
def test_it_rejects_a_company_size_that_is_not_a_head_count(raw, reason):
    with pytest.raises(RejectedRecord) as caught:
        clean_record({"email": "anna@acme-gmbh.de", "company_size": raw})

    assert str(caught.value) == reason


@pytest.mark.parametrize(("raw", "zone"), [
    ("Europe/Berlin", "Europe/Berlin"), ("europe/berlin", "Europe/Berlin"), (" AMERICA/NEW_YORK ", "America/New_York"),
    ("utc", "UTC"),
])
def test_it_matches_a_timezone_case_insensitively_and_stores_its_proper_name(raw, zone):
    assert clean_record({"email": "anna@acme-gmbh.de", "timezone": raw}).fields["timezone"] == zone


@pytest.mark.parametrize("raw", ["Europe/Springfield", "CEST", "+02:00"])
def test_it_rejects_an_unknown_timezone(raw):
    with pytest.raises(RejectedRecord, match=rf"^timezone '{raw}' is not a known time zone$".replace("+", r"\+")):
        clean_record({"email": "anna@acme-gmbh.de", "timezone": raw})


def test_it_leaves_an_empty_timezone_out():
    assert "timezone" not in clean_record({"email": "anna@acme-gmbh.de", "timezone": "  "}).fields


@pytest.mark.parametrize(("raw", "website"), [
    ("acme-gmbh.de", "https://acme-gmbh.de"),
    ("www.acme-gmbh.de/about", "https://www.acme-gmbh.de/about"),
    ("http://acme-gmbh.de", "http://acme-gmbh.de"),
    (" https://acme-gmbh.de/ ", "https://acme-gmbh.de/"),
])
def test_it_gives_a_website_without_scheme_https(raw, website):
    assert clean_record({"email": "anna@acme-gmbh.de", "website": raw}).fields["website"] == website


@pytest.mark.parametrize("raw", ["not a website", "ftp://acme-gmbh.de", "https://", "acme"])
def test_it_rejects_a_website_that_is_not_a_web_address(raw):
    with pytest.raises(RejectedRecord) as caught:
        clean_record({"email": "anna@acme-gmbh.de", "website": raw})

    assert str(caught.value) == f"website {raw!r} is not a web address"


def test_it_truncates_over_long_text_to_the_column_length():
    names = ("first_name", "last_name", "company", "title", "industry", "country")
    record = clean_record({"email": "anna@acme-gmbh.de", **{name: "x" * 300 for name in names}})

    assert {name: len(record.fields[name]) for name in names} == {
        "first_name": 100, "last_name": 100, "company": 200, "title": 200, "industry": 100, "country": 100}
    assert {name: Lead._meta.get_field(name).max_length for name in names} == {
        name: len(record.fields[name]) for name in names}


def test_it_truncates_an_over_long_website_to_the_column_length():
    long_path = "/" + "a" * 600
    record = clean_record({"email": "anna@acme-gmbh.de", "website": f"acme-gmbh.de{long_path}"})

    assert record.fields["website"] == f"https://acme-gmbh.de{long_path}"[:500]


def test_it_collapses_inner_whitespace_in_text():
    record = clean_record({"email": "anna@acme-gmbh.de", "title": "  Head\tof\n\nSales  "})

    assert record.fields["title"] == "Head of Sales"


# The fast path for plain web addresses (``records._plain_url``) must give the validator's answer.
_HOST_LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?", fullmatch=True)
_URL_ODD = st.sampled_from(["", " ", "\u2003", "\u00a0", "\t", "\n", ".", "..", "-", "--", "ä", "ſ", "\u212a", "@",
                            ":", ":8080", "%20", "/", "?q=1", "#top", "xn--", "[::1]", "\\", "\x00"])


@st.composite
def _urls(draw):
    host = ".".join([*draw(st.lists(_HOST_LABEL, min_size=0, max_size=3)),
                     draw(st.sampled_from(["com", "DE", "test", "local", "c", "123", "xn--p1ai", "museum"]))])
    url = draw(st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "https:/", ""])) + host
    url += draw(st.sampled_from(["", "/", "/about-us", "/a b", "?x=1&y=ä", "#top", "/path/\u2003x"]))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(_URL_ODD) + url[at:]
    return url


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_urls())
@example("https://acme-gmbh.de/Über-uns")
@example("https://xn--exmple-cua.com")
@example("https://a" + ".b" * 130 + ".com")
@example("httpſ://acme.de")
@example("https://acme.de/a\u2003b")
def test_the_fast_path_for_plain_web_addresses_agrees_with_the_validator(url):
    if not _plain_url(url):
        return
    _validate_url(url)  # raises if the validator disagrees


def test_the_fast_path_takes_the_web_addresses_lists_are_made_of():
    assert [_plain_url(url) for url in ("https://acme-gmbh.de", "http://www.ACME.de/about?x=1#team")] == [True, True]
    assert [_plain_url(url) for url in ("https://exämple.com", "https://acme.de:8080", "https://acme.test",
                                        "https://acme.de/a b", "ftp://acme.de")] == [False] * 5


@pytest.mark.parametrize("text", ["Anna", "", " ", "  Anna  Maria ", "Anna\u00a0Maria", "Anna\u3000", "a\x1fb",
                                  "a\u2028b", "a\u200ab", "Zoë ‐ Ölçer", "a\tb", "a\x85b", "ẞ  ß", "a b c"])
def test_plain_text_is_kept_as_it_is_only_when_splitting_would_not_change_it(text):
    cleaned = clean_record({"email": "anna@acme-gmbh.de", "first_name": text})

    assert cleaned.fields["first_name"] == " ".join(text.split())


@given(st.text(st.characters(codec="utf-8"), max_size=20))
def test_the_shortcut_for_plain_text_agrees_with_splitting_it(text):
    assert _single_spaced(text) == " ".join(text.split())
