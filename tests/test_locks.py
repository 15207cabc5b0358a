from datetime import timedelta

import pytest
from django.utils import timezone

from cam.locks import lease_acquire, lease_release, lease_renew
from cam.models import Lease

pytestmark = pytest.mark.django_db


def test_it_gives_a_free_lease_to_the_first_holder_only():
    assert lease_acquire(name="cycle", holder="a", ttl_seconds=60)
    assert not lease_acquire(name="cycle", holder="b", ttl_seconds=60)
    assert Lease.objects.get(name="cycle").holder == "a"


def test_it_extends_a_lease_its_holder_takes_again():
    lease_acquire(name="cycle", holder="a", ttl_seconds=10)
    before = Lease.objects.get(name="cycle").expires_at
    assert lease_acquire(name="cycle", holder="a", ttl_seconds=600)
    assert Lease.objects.get(name="cycle").expires_at > before


def test_it_hands_an_expired_lease_to_the_next_taker():
    lease_acquire(name="cycle", holder="dead", ttl_seconds=60)
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert lease_acquire(name="cycle", holder="alive", ttl_seconds=60)
    assert Lease.objects.get(name="cycle").holder == "alive"


def test_it_renews_only_for_the_holder_and_says_when_the_lease_was_lost():
    lease_acquire(name="cycle", holder="a", ttl_seconds=60)
    assert lease_renew(name="cycle", holder="a", ttl_seconds=120)
    assert not lease_renew(name="cycle", holder="b", ttl_seconds=120)
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    lease_acquire(name="cycle", holder="b", ttl_seconds=60)
    assert not lease_renew(name="cycle", holder="a")


def test_it_releases_only_the_holders_lease():
    lease_acquire(name="cycle", holder="a", ttl_seconds=60)
    assert not lease_release(name="cycle", holder="b")
    assert lease_release(name="cycle", holder="a")
    assert not Lease.objects.exists()


def test_it_uses_the_configured_ttl_by_default(settings):
    settings.AICMO_CAM_LOCK_TTL_SECONDS = 300
    lease_acquire(name="cycle", holder="a")
    lease = Lease.objects.get(name="cycle")
    assert timedelta(seconds=299) < lease.expires_at - lease.acquired_at <= timedelta(seconds=300)
