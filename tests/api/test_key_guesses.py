"""Failed API-key guesses are throttled per client address: after N in a minute, 429 with Retry-After."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cam.api import key_guesses
from cam.models import CamAPIKey

pytestmark = pytest.mark.django_db

URL = "/api/cam/campaigns/"
# Twelve seconds into a minute on a fake clock: 48 seconds are left.
START = 1_800_000_000 - 1_800_000_000 % 60 + 12


@pytest.fixture
def clock(monkeypatch):
    now = [float(START)]
    monkeypatch.setattr(key_guesses, "clock", lambda: now[0])
    return now


@pytest.fixture
def limit(settings):
    settings.AICMO_CAM_API_KEY_FAILURES_PER_MINUTE = 3
    return 3


def attempt(key: str, address: str = "203.0.113.5", **headers):
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}", REMOTE_ADDR=address, **headers)


def guess(n: int) -> str:
    return f"AbCdEfGh.{'x' * 31}{n}"


def test_after_n_failed_guesses_an_address_gets_429_with_retry_after(clock, limit):
    assert [attempt(guess(n)).status_code for n in range(limit)] == [401] * limit

    refused = attempt(guess(99))

    assert refused.status_code == 429
    assert refused["Retry-After"] == "48"
    assert refused.json()["detail"] == ("Too many failed API-key attempts from your address. "
                                        "Expected available in 48 seconds.")


def test_while_refused_even_the_right_key_gets_429_so_a_guess_learns_nothing(clock, limit):
    _, real = CamAPIKey.objects.create_key(name="crm")
    for n in range(limit):
        attempt(guess(n))

    assert attempt(real).status_code == 429
    clock[0] += 48  # the next minute
    assert attempt(real).status_code == 200


def test_other_addresses_and_good_keys_are_not_counted(clock, limit):
    _, real = CamAPIKey.objects.create_key(name="crm")
    for _ in range(10):
        assert attempt(real).status_code == 200  # keys that check out never count
    for n in range(limit):
        attempt(guess(n))

    assert attempt(guess(7), address="198.51.100.8").status_code == 401
    assert attempt(real, address="198.51.100.8").status_code == 200
    assert APIClient().get(URL, REMOTE_ADDR="203.0.113.5").status_code == 401  # no key: not a guess


def test_an_empty_or_revoked_key_counts_as_a_failed_guess(clock, limit):
    api_key, revoked = CamAPIKey.objects.create_key(name="old")
    CamAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)

    codes = [attempt("").status_code, attempt(revoked).status_code, attempt(guess(1)).status_code,
             attempt(guess(2)).status_code]

    assert codes == [401, 401, 401, 429]


def test_behind_a_proxy_it_counts_the_client_the_proxy_names(clock, limit, settings):
    settings.AICMO_CAM_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for n in range(limit):
        attempt(guess(n), address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")

    assert attempt(guess(9), address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    assert attempt(guess(9), address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 401


def test_the_count_starts_again_each_minute(clock, limit):
    for n in range(limit):
        attempt(guess(n))
    clock[0] += 48

    assert [attempt(guess(n)).status_code for n in range(limit + 1)] == [401] * limit + [429]
