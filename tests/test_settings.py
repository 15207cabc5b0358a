"""Settings refuse bad values by name, and production settings pass Django's deploy checks."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7Qm2vR9pL4tY8wK1nB6cF3hJ5sD0gZaE2uI9oP7yT4rW1qXvN3mK8",
    "ALLOWED_HOSTS": "cam.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://cam.example.com",
    "AICMO_CAM_PUBLIC_URL": "https://cam.example.com",
    "AICMO_CAM_POSTAL_ADDRESS": "Example Ltd, 1 High Street, London N1 1AA, UK",
    "AICMO_CAM_ENCRYPTION_KEYS": "uQm4yV7o0hN5Kx2cW9bR1tE6sA3dF8gJ0lZ4pC7vB2M=",
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
        ("AICMO_CAM_EGRESS_ALLOW", "http://crm.internal"),
        ("AICMO_CAM_EGRESS_ALLOW", "10.0.0.0/33"),
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


def test_the_deploy_checks_refuse_development_values_left_in_production():
    # What a first deployment that sets only the core variables gets: links in real email pointing at this
    # machine, a footer without a postal address, and no key for the secrets CAM stores.
    core = {k: v for k, v in PRODUCTION.items() if not k.startswith("AICMO_CAM_")}
    result = run_manage("check", "--deploy", **core)
    assert result.returncode != 0
    for check_id in ("cam.E001", "cam.E002", "cam.E003", "cam.E004"):
        assert check_id in result.stderr, result.stderr


def test_it_reads_the_cam_family_with_their_defaults(settings):
    # The suite runs with none of them set, so these are the documented defaults.
    assert settings.AICMO_CAM_WORKER_INTERVAL_SECONDS == 60
    assert settings.AICMO_CAM_LOCK_TTL_SECONDS == 300
    assert settings.AICMO_CAM_WORKER_ENABLED is True
    assert settings.Q_CLUSTER["timeout"] < settings.Q_CLUSTER["retry"]


def test_nothing_internal_may_be_requested_unless_the_egress_allow_list_names_it():
    probe = "from django.conf import settings as s; print(s.AICMO_CAM_EGRESS_ALLOW)"
    assert run_manage("shell", "-c", probe, **PRODUCTION).stdout.split()[-1] == "[]"
    allowed = run_manage("shell", "-c", probe,
                         AICMO_CAM_EGRESS_ALLOW="CRM.Internal., .corp.example, 10.20.3.4, fd12::/48")
    assert allowed.stdout.strip().splitlines()[-1] == "['crm.internal', '.corp.example', '10.20.3.4/32', 'fd12::/48']"


def test_it_moves_the_broker_and_cache_to_redis_when_redis_url_is_set():
    probe = ("from django.conf import settings as s; "
             "print(s.Q_CLUSTER.get('redis'), s.Q_CLUSTER.get('orm'), s.CACHES['default']['BACKEND'])")
    with_redis = run_manage("shell", "-c", probe, REDIS_URL="redis://127.0.0.1:6379/3")
    without = run_manage("shell", "-c", probe)
    assert with_redis.stdout.split()[-3:] == ["redis://127.0.0.1:6379/3", "None",
                                              "django.core.cache.backends.redis.RedisCache"]
    assert without.stdout.split()[-3:] == ["None", "default", "aicmo_site.cache.DatabaseCache"]


def test_production_settings_secure_cookies_hsts_ssl_and_trusted_origins_from_the_environment():
    probe = ("import json; from django.conf import settings as s; print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, "
             "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
             "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_CONTENT_TYPE_NOSNIFF, s.X_FRAME_OPTIONS, "
             "s.CSRF_TRUSTED_ORIGINS, s.ALLOWED_HOSTS, s.AICMO_CAM_API_MAX_BODY_BYTES, s.AXES_FAILURE_LIMIT, "
             "s.AXES_COOLOFF_TIME.total_seconds(), s.AXES_LOCKOUT_PARAMETERS, s.AUTHENTICATION_BACKENDS[0], "
             "s.MIDDLEWARE[-1]]))")
    result = run_manage("shell", "-c", probe, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        False, True, True, True, True, 31_536_000, True, True, "DENY",
        ["https://cam.example.com"], ["cam.example.com"], 1024 * 1024, 5, 3600.0, [["username", "ip_address"]],
        "axes.backends.AxesStandaloneBackend", "axes.middleware.AxesMiddleware"]


def test_the_login_lockout_is_set_from_the_environment():
    probe = "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds())"
    result = run_manage("shell", "-c", probe, AXES_FAILURE_LIMIT="3", AXES_COOLOFF_MINUTES="15")
    assert result.stdout.split()[-2:] == ["3", "900.0"]
    bad = run_manage("check", AXES_FAILURE_LIMIT="0")
    assert "AXES_FAILURE_LIMIT='0' is not valid" in bad.stderr


def test_behind_declared_proxies_the_login_lockout_reads_the_client_address_from_x_forwarded_for():
    probe = ("from django.conf import settings as s; from types import SimpleNamespace as R; "
             "m = {'REMOTE_ADDR': '10.0.0.1', 'HTTP_X_FORWARDED_FOR': '6.6.6.6, 203.0.113.9'}; "
             "print(s.AXES_CLIENT_IP_CALLABLE(R(META=m)))")
    assert run_manage("shell", "-c", probe).stdout.split()[-1] == "10.0.0.1"
    assert run_manage("shell", "-c", probe, AICMO_CAM_TRUSTED_PROXY_COUNT="1").stdout.split()[-1] == "203.0.113.9"
    assert run_manage("shell", "-c", probe, AICMO_CAM_TRUSTED_PROXY_COUNT="2").stdout.split()[-1] == "6.6.6.6"


def test_a_postgresql_connection_gives_up_on_a_silent_database_instead_of_hanging():
    probe = "from django.conf import settings as s; print(sorted(s.DATABASES['default']['OPTIONS'].items()))"
    defaults = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam")
    assert defaults.stdout.strip().splitlines()[-1] == str(sorted({
        "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
        "keepalives_count": 3, "tcp_user_timeout": 30_000, "options": "-c jit=off", "prepare_threshold": 5}.items()))
    tuned = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam",
                       DATABASE_TIMEOUT_SECONDS="90", DATABASE_CONNECT_TIMEOUT_SECONDS="3")
    assert "('connect_timeout', 3)" in tuned.stdout and "('tcp_user_timeout', 90000)" in tuned.stdout
    behind_a_pooler = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam",
                                 DATABASE_PREPARED_STATEMENTS="false")
    assert "('prepare_threshold', None)" in behind_a_pooler.stdout
    own_options = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam"
                             "?options=-c%20statement_timeout%3D5000")
    assert "('options', '-c statement_timeout=5000 -c jit=off')" in own_options.stdout
    jit_chosen = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam"
                            "?options=-c%20jit%3Don")
    assert "('options', '-c jit=on')" in jit_chosen.stdout
    refused = run_manage("shell", "-c", probe, DATABASE_URL="postgres://cam@db.example.com:5432/cam",
                         DATABASE_TIMEOUT_SECONDS="1")
    assert refused.returncode != 0 and "DATABASE_TIMEOUT_SECONDS" in refused.stderr


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_cams_postgresql_connections_never_compile_queries_with_jit():
    # The grouped counts of the metrics step and the dashboard took seconds of JIT compiling for
    # milliseconds of work; the connection turns it off whatever the server's default.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


# Documented beside the settings, though settings.py does not read them; each with why.
NOT_READ_BY_SETTINGS = {
    "DJANGO_SUPERUSER_USERNAME": "read by manage.py cam_admin_user when it creates the first login",
    "DJANGO_SUPERUSER_PASSWORD": "read by manage.py cam_admin_user when it creates the first login",
    "DJANGO_SUPERUSER_EMAIL": "read by manage.py cam_admin_user when it creates the first login",
}


def variables_read_by_settings() -> set[str]:
    """Every ``env.<reader>("NAME", ...)`` in settings.py: the settings read the environment only so."""
    tree = ast.parse((ROOT / "aicmo_site" / "settings.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "env"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def not_a_secret(names: set[str]) -> set[str]:
    # CAM_SECRET_ variables are secrets that records name, not settings; the docs may show one as an example.
    return {name for name in names if not name.startswith("CAM_SECRET_")}


@pytest.mark.parametrize(("document", "pattern"), [
    (".env.example", r"^# ([A-Z][A-Z0-9_]*)="),
    ("docs/configuration.md", r"^\| `([A-Z][A-Z0-9_]*)` \|"),
])
def test_every_variable_the_settings_read_is_documented_and_nothing_documented_is_unread(document, pattern):
    read = variables_read_by_settings()
    assert len(read) > 40, "settings.py no longer reads the environment through env.<reader>(\"NAME\")"
    assert not read & set(NOT_READ_BY_SETTINGS), "an exception is read by the settings now; drop it from the list"
    documented = not_a_secret(set(re.findall(pattern, (ROOT / document).read_text(), flags=re.MULTILINE)))
    assert sorted(read - documented) == [], f"read by settings.py but missing from {document}"
    assert sorted(documented - read - set(NOT_READ_BY_SETTINGS)) == [], f"in {document} but read by nothing"
    assert sorted(set(NOT_READ_BY_SETTINGS) - documented) == [], f"missing from {document}"
