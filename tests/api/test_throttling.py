"""Per-key request rates for reads, writes and job runs, counted in the shared cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from cam.api.throttling import CamRateThrottle
from cam.models import CamAPIKey
from tests.api.conftest import client_with_key
from tests.concurrency import run_at_once
from tests.factories import UserFactory

pytestmark = pytest.mark.urls(__name__)
ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"


class Things(APIView):
    def get(self, request):
        return Response({"things": []})

    def post(self, request):
        return Response({"ok": True}, status=201)


class RunJob(APIView):
    throttle_scope = "cam_jobs"

    def post(self, request):
        return Response({"queued": True}, status=202)


urlpatterns = [path("things/", Things.as_view()), path("run/", RunJob.as_view())]


@pytest.fixture(autouse=True)
def clear_of_a_window_edge():
    """Counting is per fixed window (a minute here): start a test well inside one, so its requests
    are never split across two windows, in this process or in another."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


@pytest.fixture
def rates(settings):
    """Tiny rates, so a test reaches each limit in a few requests."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"cam_read": "3/min", "cam_write": "2/min",
                                                          "cam_jobs": "1/min"}}
    return settings


def call(client, scope: str):
    if scope == "cam_read":
        return client.get("/things/")
    if scope == "cam_write":
        return client.post("/things/", {}, format="json")
    return client.post("/run/", {}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(("scope", "limit"), [("cam_read", 3), ("cam_write", 2), ("cam_jobs", 1)])
def test_each_scope_answers_429_with_retry_after_past_its_rate(rates, scope, limit):
    client = client_with_key()
    for _ in range(limit):
        assert call(client, scope).status_code < 400
    refused = call(client, scope)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Request was throttled" in refused.json()["detail"]


@pytest.mark.django_db
def test_the_scopes_are_counted_apart(rates):
    client = client_with_key()
    for _ in range(3):
        call(client, "cam_read")
    assert call(client, "cam_read").status_code == 429
    # Reads used up; writes and job runs still have their own allowance.
    assert call(client, "cam_write").status_code == 201
    assert call(client, "cam_jobs").status_code == 202


@pytest.mark.django_db
def test_it_counts_per_key(rates):
    busy, other = client_with_key(name="busy"), client_with_key(name="other")
    for _ in range(3):
        call(busy, "cam_read")
    assert call(busy, "cam_read").status_code == 429
    assert call(other, "cam_read").status_code == 200


@pytest.mark.django_db
def test_it_counts_a_staff_session_per_user(rates, client):
    client.force_login(UserFactory(is_staff=True))
    for _ in range(3):
        assert client.get("/things/").status_code == 200
    assert client.get("/things/").status_code == 429
    assert call(client_with_key(), "cam_read").status_code == 200


@pytest.mark.django_db
def test_it_follows_a_changed_rate_setting(settings):
    # DRF copies the rates onto the throttle class at import; CAM's throttle reads them per request.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"cam_read": "1/min", "cam_write": "1/min",
                                                          "cam_jobs": "1/min"}}
    client = client_with_key()
    assert call(client, "cam_read").status_code == 200
    assert call(client, "cam_read").status_code == 429


def count_in_another_process(*, env: dict[str, str], key_pk: str, prefix: str = "") -> str:
    """Ask a separate Python process (as another web worker would) whether the key may read again.

    It builds its own cache from settings (``prefix`` for a Redis test namespace) and knows nothing
    of this process's memory, so only a shared cache can make it answer "refused".
    """
    script = f"""
import django
django.setup()
from types import SimpleNamespace
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from cam.api.throttling import CamRateThrottle
from cam.models import CamAPIKey
from cam.models import CamAPIKey

throttle = CamRateThrottle()
if {prefix!r}:
    throttle.cache = RedisCache({REDIS_URL!r}, {{"KEY_PREFIX": {prefix!r}}})
else:
    throttle.cache = caches["default"]
request = SimpleNamespace(method="GET", auth=CamAPIKey(id={key_pk!r}), user=None, META={{}})
print("allowed" if throttle.allow_request(request, SimpleNamespace()) else "refused")
"""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base.update(DJANGO_SETTINGS_MODULE="aicmo_site.settings", AICMO_CAM_API_READ_RATE="3/min", **env)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=base, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_count_lives_in_the_database_cache_shared_by_every_process(rates):
    assert rates.CACHES["default"]["BACKEND"] == "aicmo_site.cache.DatabaseCache"
    client = client_with_key()
    key_pk = CamAPIKey.objects.get().pk
    try:
        for _ in range(3):
            assert call(client, "cam_read").status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT cache_key FROM cam_cache")
            stored = [row[0] for row in cursor.fetchall()]
        assert any(f"cam_read_key-{key_pk}" in name for name in stored), stored
        assert count_in_another_process(env={"DATABASE_URL": database_url()}, key_pk=key_pk) == "refused"
        cache.clear()
        assert count_in_another_process(env={"DATABASE_URL": database_url()}, key_pk=key_pk) == "allowed"
    finally:
        # Committed rows in a table no model owns: the end-of-test flush would leave them behind.
        cache.clear()


@pytest.mark.django_db
def test_the_count_lives_in_redis_when_the_cache_is_redis(rates):
    prefix = f"cam-test-{uuid.uuid4().hex}"
    rates.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                                "KEY_PREFIX": prefix}}
    client = client_with_key()
    key_pk = CamAPIKey.objects.get().pk
    base = CamRateThrottle.cache_format % {"scope": "cam_read", "ident": f"key-{key_pk}"}
    throttle_key = CamRateThrottle.counter_key(base, int(time.time() // 60))
    try:
        for _ in range(3):
            assert call(client, "cam_read").status_code == 200
        assert call(client, "cam_read").status_code == 429
        assert cache.get(throttle_key) == 4  # the refused request is counted too
        env = {"DATABASE_URL": "sqlite:////nonexistent/unused.sqlite3"}  # no database: the cache alone answers
        assert count_in_another_process(env=env, key_pk=key_pk, prefix=prefix) == "refused"
        assert count_in_another_process(env=env, key_pk=key_pk, prefix=f"{prefix}-elsewhere") == "allowed"
    finally:
        cache.delete(throttle_key)  # only this test's key: clear() would empty the whole Redis database


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_never_get_past_the_limit(rates):
    """Twelve requests at once with one key and a limit of 3: exactly three answered, whatever the
    interleaving (the count is an atomic increment, not a read followed by a write)."""
    _, key = CamAPIKey.objects.create_key(name="burst")

    def one_request() -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client.get("/things/").status_code

    try:
        statuses, errors = run_at_once(one_request, threads=12)
        assert errors == []
        assert sorted(statuses) == [200] * 3 + [429] * 9
    finally:
        cache.clear()
