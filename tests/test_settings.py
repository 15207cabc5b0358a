"""Settings refuse bad values by name, and production settings pass Django's deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7Qm2vR9pL4tY8wK1nB6cF3hJ5sD0gZaE2uI9oP7yT4rW1qXvN3mK8",
    "ALLOWED_HOSTS": "cam.example.com",
}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A clean environment: only what the test sets, so the developer's own .env or variables do not leak in.
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    base["DJANGO_SETTINGS_MODULE"] = "aicmo_site.settings"
    base["DATABASE_URL"] = f"sqlite:///{ROOT / 'db.sqlite3'}"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "ture"),
        ("AICMO_CAM_WORKER_ENABLED", "maybe"),
        ("AICMO_CAM_WORKER_INTERVAL_SECONDS", "sixty"),
        ("AICMO_CAM_WORKER_INTERVAL_SECONDS", "1"),
        ("AICMO_CAM_LOCK_TTL_SECONDS", "-5"),
        ("AICMO_CAM_ALERT_EMAILS", "sales@example.com, not-an-address"),
        ("AICMO_CAM_PUBLIC_URL", "cam.example.com"),
        ("DATABASE_URL", "mysql://root@localhost/cam"),
        ("REDIS_URL", "localhost:6379"),
        ("EMAIL_URL", "smtp-but-wrong"),
        ("CSRF_TRUSTED_ORIGINS", "cam.example.com"),
        ("LOG_LEVEL", "LOUD"),
        ("AICMO_CAM_DNS_NAMESERVERS", "dns.example.com"),
        ("AICMO_CAM_DNS_NAMESERVERS", "127.0.0.1:99999"),
    ],
)
def test_it_refuses_to_start_with_a_bad_value_and_names_the_variable(variable, value):
    result = run_manage("check", **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{variable}={value!r} is not valid" in result.stderr


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_manage("check", DEBUG="false", ALLOWED_HOSTS="cam.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_it_starts_with_nothing_set():
    result = run_manage("check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_passes_the_deploy_checks_with_the_documented_production_variables():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_reads_the_cam_family_with_their_defaults(settings):
    # The suite runs with none of them set, so these are the documented defaults.
    assert settings.AICMO_CAM_WORKER_INTERVAL_SECONDS == 60
    assert settings.AICMO_CAM_LOCK_TTL_SECONDS == 300
    assert settings.AICMO_CAM_WORKER_ENABLED is True
    assert settings.Q_CLUSTER["timeout"] < settings.Q_CLUSTER["retry"]


def test_it_moves_the_broker_and_cache_to_redis_when_redis_url_is_set():
    probe = ("from django.conf import settings as s; "
             "print(s.Q_CLUSTER.get('redis'), s.Q_CLUSTER.get('orm'), s.CACHES['default']['BACKEND'])")
    with_redis = run_manage("shell", "-c", probe, REDIS_URL="redis://127.0.0.1:6379/3")
    without = run_manage("shell", "-c", probe)
    assert with_redis.stdout.split()[-3:] == ["redis://127.0.0.1:6379/3", "None",
                                              "django.core.cache.backends.redis.RedisCache"]
    assert without.stdout.split()[-3:] == ["None", "default", "django.core.cache.backends.db.DatabaseCache"]
