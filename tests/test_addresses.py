"""Normalising a harvested address: what CAM stores, what it flags, and why it refuses one."""

from __future__ import annotations

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cam.addresses import (
    RESERVED_OK,
    NormalizedAddress,
    RejectedAddress,
    _plain,
    address_key,
    address_spellings,
    domain_key,
    domain_spellings,
    normalize_address,
    normalize_domain,
    normalize_plain_addresses,
)


def test_it_trims_and_lower_cases_an_address():
    assert normalize_address("  Anna.Schmidt@ACME-GmbH.de ") == NormalizedAddress(
        email="anna.schmidt@acme-gmbh.de", domain="acme-gmbh.de", is_role_account=False, is_free_mail=False)


@pytest.mark.parametrize("email", ["info@acme-gmbh.de", "Sales@acme-gmbh.de", "support+eu@acme-gmbh.de",
                                   "no-reply@acme-gmbh.de", "vertrieb@acme-gmbh.de"])
def test_it_flags_role_accounts(email):
    address = normalize_address(email)

    assert (address.is_role_account, address.is_free_mail) == (True, False)


def test_it_does_not_flag_a_person_whose_name_starts_like_a_role():
    assert normalize_address("infoanna@acme-gmbh.de").is_role_account is False


@pytest.mark.parametrize("email", ["anna@gmail.com", "anna@GMX.de", "anna@outlook.com", "anna@web.de"])
def test_it_flags_free_mail(email):
    address = normalize_address(email)

    assert (address.is_free_mail, address.is_role_account) == (True, False)


def test_it_flags_a_role_account_at_a_free_mail_domain_as_both():
    address = normalize_address("info@gmail.com")

    assert (address.is_role_account, address.is_free_mail) == (True, True)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_it_rejects_a_missing_address(raw):
    with pytest.raises(RejectedAddress, match=r"^no email address$"):
        normalize_address(raw)


@pytest.mark.parametrize(("raw", "reason"), [
    ("anna.acme-gmbh.de", "must have an @-sign"),
    ("anna@", "There must be something after the @-sign"),
    ("anna@acme", "It should have a period"),
    ("anna@@acme-gmbh.de", "invalid email 'anna@@acme-gmbh.de'"),
    ("anna@acme.test", "special-use or reserved name"),
])
def test_it_rejects_an_invalid_address_with_the_reason(raw, reason):
    with pytest.raises(RejectedAddress) as caught:
        normalize_address(raw)

    message = str(caught.value)
    assert message.startswith(f"invalid email {raw!r}: ")
    assert reason in message


# -- one spelling for leads and the suppression list ------------------------------------------------

@pytest.mark.parametrize("raw", ["üser@exämple.com", " ÜSER@EXÄMPLE.COM ", "üser@xn--exmple-cua.com",
                                 "Üser@XN--EXMPLE-CUA.COM"])
def test_an_internationalised_address_has_one_spelling_whatever_the_input(raw):
    assert normalize_address(raw).email == "üser@exämple.com"
    assert normalize_address(raw).domain == "exämple.com"
    assert address_key(raw) == "üser@exämple.com"
    assert address_spellings(raw)[:2] == ("üser@exämple.com", "üser@xn--exmple-cua.com")


@pytest.mark.parametrize("raw", ["anna@acme.test", "anna@printer.local", "root@localhost", '"anna smith"@acme.de'])
def test_reserved_domains_are_accepted_only_when_asked(raw):
    assert normalize_address(raw, allow_reserved=True).email == raw.lower()
    with pytest.raises(RejectedAddress):
        normalize_address(raw)


def test_allow_reserved_spells_an_address_as_a_lead_has_it():
    assert normalize_address(" Anna@XN--EXMPLE-CUA.test ", allow_reserved=True).email == "anna@exämple.test"
    assert normalize_address("Anna.Schmidt@ACME-GmbH.de", allow_reserved=True) == normalize_address(
        "Anna.Schmidt@ACME-GmbH.de")


@pytest.mark.parametrize("raw", ["exämple.com", " EXÄMPLE.COM ", "xn--exmple-cua.com", "@XN--EXMPLE-CUA.com"])
def test_a_domain_has_the_spelling_of_an_address_domain(raw):
    assert normalize_domain(raw) == domain_key(raw) == "exämple.com"
    assert domain_spellings("exämple.com") == ("exämple.com", "xn--exmple-cua.com")


@pytest.mark.parametrize("raw", ["", "no_such domain", "anna@acme.de", "acme", "[127.0.0.1]", "xn--.com"])
def test_it_rejects_what_is_no_domain(raw):
    with pytest.raises(RejectedAddress):
        normalize_domain(raw)


def test_text_that_is_no_address_still_has_a_key_to_compare():
    assert address_key("  Not An Address ") == "not an address"
    assert address_spellings("  Not An Address ") == ("not an address",)


# The fast path for plain addresses (``cam.addresses._plain``) must give the validator's answer. Generated
# from the shape it accepts, with upper case, reserved names, long labels and the characters around its
# edges mixed in, so a rule it forgot shows up as a difference.
_LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?", fullmatch=True)
_TLD = st.sampled_from(["com", "de", "Test", "local", "arpa", "onion", "invalid", "localhost", "example", "c",
                        "COM", "xn--p1ai", "123", "a1", "museum", "x" * 63, "x" * 64])
_LOCAL = st.from_regex(r"[a-zA-Z0-9_+.\-]{1,70}", fullmatch=True)
_ODD = st.sampled_from(["", " ", ".", "..", "-", "--", "xn--", "ä", '"', "@", "\t", "(", "_"])


@st.composite
def _addresses(draw):
    labels = draw(st.lists(_LABEL, min_size=0, max_size=4))
    domain = ".".join([*labels, draw(_TLD)])
    text = f"{draw(_LOCAL)}@{domain}"
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_ODD) + text[at:]
    return text


def _validator_answer(text, **options):
    try:
        return validate_email(text, check_deliverability=False, **options).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_addresses())
@example("Anna.Schmidt@ACME-GmbH.de")
@example("a@" + "b" * 63 + ".com")
@example("a@" + ".".join(["b" * 60] * 3) + ".com")
@example("x" * 64 + "@example.com")
@example("x" * 64 + "@" + ".".join(["b" * 62] * 3) + ".com")  # 257 characters: too long as a whole
@example("anna@ab--cd.com")
@example("anna@mail.test")
@example("anna@xn--exmple-cua.com")
def test_the_fast_path_for_plain_addresses_agrees_with_the_validator(text):
    plain = _plain(text)
    if plain is None:
        return
    email = f"{plain[0]}@{plain[1]}"
    assert _validator_answer(text) == email
    assert _validator_answer(text, **RESERVED_OK) == email
    assert domain_spellings(plain[1]) == (plain[1],)
    assert validate_email(f"postmaster@{plain[1]}", check_deliverability=False).ascii_domain == plain[1]


def test_the_fast_path_takes_the_addresses_lists_are_made_of():
    assert _plain("Anna.Schmidt+eu@Mail.ACME-GmbH.de") == ("anna.schmidt+eu", "mail.acme-gmbh.de")
    assert [_plain(text) for text in ("anna@exämple.com", "anna@xn--exmple-cua.com", '"a b"@acme.de', "anna@acme.test",
                                      "anna@[192.0.2.1]", "anna@ab--cd.com", "anna@acme.de ")] == [None] * 7


def test_the_validators_special_use_names_are_top_level_labels():
    # The fast path looks only at the top-level label; a dotted name here would need the whole suffix.
    assert all("." not in name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_addresses())
@example(" Anna@ACME-GmbH.de ")
def test_the_keys_and_spellings_of_a_plain_address_are_the_validators(text):
    if _plain(text.strip()) is None:
        return
    key = normalize_address(text, allow_reserved=True).email
    domain = key.rpartition("@")[2]
    assert address_key(text) == key
    assert address_spellings(text) == (key,)
    assert domain_key(domain) == normalize_domain(domain) == domain


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_addresses(), _addresses().map(lambda text: f" {text}\t"),
                          st.sampled_from(["", " ", "ANNA@\u212aacme.de", "anna@acme.de\u2003", "@acme.de"])),
                max_size=8))
def test_a_batch_of_plain_addresses_is_normalised_as_one_at_a_time(texts):
    # ``normalize_plain_addresses`` is the intake's batch form of the fast path: the same address for every
    # text the fast path takes, and none for every other (which then goes to ``normalize_address``).
    expected = [None if _plain(text.strip()) is None else normalize_address(text) for text in texts]

    assert normalize_plain_addresses(texts) == expected
