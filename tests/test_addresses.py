"""Normalising a harvested address: what CAM stores, what it flags, and why it refuses one."""

from __future__ import annotations

import pytest

from cam.addresses import (
    NormalizedAddress,
    RejectedAddress,
    address_key,
    address_spellings,
    domain_key,
    domain_spellings,
    normalize_address,
    normalize_domain,
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
