"""The database cache's atomic increment and update, as the API throttles and the Resend rate limit use them."""

import pytest
from django.core.cache import cache

from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()  # committed rows in a table no model owns: the end-of-test flush would keep them


def test_it_increments_what_set_and_add_stored_and_get_reads_it_back():
    cache.set("counter", 40)
    assert cache.incr("counter") == 41
    assert cache.incr("counter", 9) == 50
    assert cache.get("counter") == 50
    assert cache.add("fresh", 0, timeout=60)
    assert cache.incr("fresh") == 1 and cache.decr("fresh") == 0


def test_a_missing_or_expired_key_cannot_be_incremented():
    with pytest.raises(ValueError):
        cache.incr("never-set")
    cache.set("gone", 1, timeout=-1)
    with pytest.raises(ValueError):
        cache.incr("gone")


def test_simultaneous_increments_are_all_counted():
    cache.set("busy", 0)
    results, errors = run_at_once(lambda: cache.incr("busy"), threads=8)
    assert errors == []
    assert sorted(results) == list(range(1, 9))
    assert cache.get("busy") == 8


def test_update_stores_what_the_change_makes_of_the_value():
    assert cache.update("state", lambda value: (value, "first")) == (None, "first")
    assert cache.update("state", lambda value: value[1] + " then second") == "first then second"
    assert cache.get("state") == "first then second"


def test_update_sees_an_expired_value_as_missing():
    cache.set("stale", "old", timeout=-1)
    assert cache.update("stale", lambda value: value, timeout=60) is None
    cache.set("kept", 41)
    assert cache.update("kept", lambda value: value + 1, timeout=60) == 42


def test_simultaneous_updates_each_see_the_one_before():
    """Eight threads, their own connections, each appending to the same value, which starts out missing:
    none is lost, whichever inserts the row first."""
    results, errors = run_at_once(lambda: cache.update("log", lambda value: (value or ()) + (len(value or ()),)),
                                  threads=8)
    assert errors == []
    assert cache.get("log") == tuple(range(8))
    assert sorted(len(result) for result in results) == list(range(1, 9))
