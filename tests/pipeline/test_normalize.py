"""Normalising a harvested address: what CAM stores, what it flags, and why it refuses one."""

from __future__ import annotations

import pytest

from cam.pipeline.normalize import NormalizedAddress, RejectedAddress, normalize_address


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
