"""CAM settings: every value comes from the environment, read here and nowhere else.

With nothing set, CAM runs for development: SQLite in the project folder, email printed to the
console, django-q2 on the ORM broker. ``.env.example`` lists every variable with its default;
docs/configuration.md explains them. A bad value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from aicmo_site.env import StrictEnv

BASE_DIR = Path(__file__).resolve().parent.parent

# A .env file beside manage.py is read for convenience in development; real environment variables
# win over it. Production deployments set variables in the process environment instead.
if (BASE_DIR / ".env").is_file():
    import environ

    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

env = StrictEnv()

# --- Core ---------------------------------------------------------------------------------------

# DEBUG defaults to on so a fresh clone runs with nothing set; the Docker image and the production
# settings documented in docs/deployment.md turn it off, and then a SECRET_KEY is required.
DEBUG = env.bool("DEBUG", True)

SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (generate one with "
                                   "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`).")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.origins("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # The admin's theme (django-unfold): before django.contrib.admin so its templates win. It ships its
    # fonts, icons, Alpine.js and Chart.js as static files, so no admin page loads anything off-site.
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.import_export",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "import_export",
    "django_q",
    "anymail",
    "cam.apps.CamConfig",
]

MIDDLEWARE = [
    # Outermost, so every answer gets the Content-Security-Policy header, the JSON errors below included.
    "csp.middleware.CSPMiddleware",
    # The admin's pages get the theme's two allowances (CONTENT_SECURITY_POLICY_ADMIN below).
    "cam.middleware.AdminThemePolicyMiddleware",
    # First after it, so every error under /api/ it sees (the other middleware's too) is answered in JSON.
    "cam.api.errors.JsonErrorMiddleware",
    # Before anything reads the request: a NUL character would reach the database as a 500.
    "cam.middleware.RefuseNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a lockout flagged during authentication into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aicmo_site.urls"
WSGI_APPLICATION = "aicmo_site.wsgi.application"
ASGI_APPLICATION = "aicmo_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and qcluster's processes share the file: WAL lets readers run beside the one
    # writer, IMMEDIATE transactions take the write lock up front (no mid-transaction upgrade
    # deadlocks), and the timeout waits for the lock instead of failing with "database is locked".
    DATABASES["default"]["ENGINE"] = "aicmo_site.sqlite_backend"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file too, not Django's shared in-memory database: that one fails concurrent
    # writers at once ("table is locked") instead of waiting, so locking could not be tested on it.
    # One file per test process, so two suites running at once never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"cam-test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database host that stops answering (a network partition, a host gone without closing its
    # connections) must fail the statement waiting on it, not hold a worker for the kernel's minutes
    # of TCP retries: connecting gives up after DATABASE_CONNECT_TIMEOUT_SECONDS, and an open
    # connection whose unacknowledged data or silence passes DATABASE_TIMEOUT_SECONDS is dropped.
    _database_timeout = env.int("DATABASE_TIMEOUT_SECONDS", 30, minimum=5, maximum=3600)
    for _option, _value in {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT_SECONDS", 10, minimum=1, maximum=600),
        "keepalives": 1, "keepalives_idle": max(1, _database_timeout // 3),
        "keepalives_interval": max(1, _database_timeout // 9), "keepalives_count": 3,
        "tcp_user_timeout": _database_timeout * 1000,
        # No JIT: CAM's grouped counts are short but wide (many FILTERed aggregates), which PostgreSQL's
        # cost model takes for big work and compiles for seconds to run milliseconds (docs/benchmarks.md).
        "options": "-c jit=off",
        # Prepared statements for the few statements CAM binds on the server (each email's outcome,
        # cam.outreach.outcomes): parsed and planned once per connection instead of once per email.
        # Django's own queries bind on the client and are never prepared. Off behind a pooler in
        # transaction mode that cannot keep them (PgBouncer before 1.21, or max_prepared_statements=0).
        "prepare_threshold": 5 if env.bool("DATABASE_PREPARED_STATEMENTS", True) else None,
    }.items():
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(_option, _value)
    # Server settings a DATABASE_URL brings (``?options=-c statement_timeout=…``) keep JIT off too, unless they
    # say what JIT should be themselves.
    _server_options = DATABASES["default"]["OPTIONS"]["options"]
    if "jit" not in _server_options:
        DATABASES["default"]["OPTIONS"]["options"] = f"{_server_options} -c jit=off".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker ---------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} is not valid: expected redis://host:6379/0.")

# A cache shared by every process (API throttles must hold across web workers): Redis when there is
# one, the database otherwise. The table is created by `manage.py createcachetable`.
CACHES = {
    "default": (
        # Timeouts, so a Redis that stops answering fails a request (and the health check) quickly
        # instead of hanging it.
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
         "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}
        if REDIS_URL
        # Room for every API client's throttle counters: past MAX_ENTRIES the cache drops entries,
        # and a dropped counter would start again at zero.
        else {"BACKEND": "aicmo_site.cache.DatabaseCache", "LOCATION": "cam_cache", "OPTIONS": {"MAX_ENTRIES": 50_000}}
    )
}

# django-q2: the ORM broker needs no other service; Redis is used when REDIS_URL is set. `timeout`
# stays below `retry`, otherwise q2 hands a task that is still running to a second worker.
Q_TIMEOUT_SECONDS = env.int("AICMO_CAM_TASK_TIMEOUT_SECONDS", 600, minimum=10)
Q_CLUSTER = {
    "name": "cam",
    "workers": env.int("AICMO_CAM_Q_WORKERS", 2, minimum=1, maximum=64),
    "timeout": Q_TIMEOUT_SECONDS,
    "retry": Q_TIMEOUT_SECONDS + 300,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Task queue",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default", "poll": 1}),
}

# --- Auth, i18n, static ---------------------------------------------------------------------------

# django-axes sees every password login first (the admin's form) and refuses it while its username and
# address are locked out; Django's own backend then checks the password. API keys and sessions do not
# pass through here, so they are never counted or locked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The back office is the only place staff log in; its login page sends them here unless the address they
# asked for (?next=) says otherwise.
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"
# After this many failed logins for one username from one address, both together are locked out for
# the cool-off time (a wrong guess from elsewhere neither locks the real user out nor counts here).
# Staff lift a lockout early under "Axes" in the admin or with `manage.py axes_reset`.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", 60, minimum=1, maximum=525_600))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A failed login while locked out does not extend the lockout, so the cool-off time is what staff read.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# No start-up banner in every management command's output; lockouts are still logged (username and address).
AXES_VERBOSE = False
# The client's address is REMOTE_ADDR, which a client cannot forge. Behind reverse proxies that append
# to X-Forwarded-For, AICMO_CAM_TRUSTED_PROXY_COUNT says how many: the address that many hops from the
# right is the client's (every address to its left could have been written by the client itself).
AICMO_CAM_TRUSTED_PROXY_COUNT = env.int("AICMO_CAM_TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)


def _client_ip(request) -> str | None:
    # The count is read from the live settings, so a test's override applies as it does elsewhere.
    from django.conf import settings

    proxies = settings.AICMO_CAM_TRUSTED_PROXY_COUNT
    if proxies:
        hops = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


AXES_CLIENT_IP_CALLABLE = _client_ip

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Development serves files straight from the apps (no collectstatic needed); production from STATIC_ROOT.
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed files in production (built by collectstatic); plain files in development
    # and tests, where no manifest exists.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security (production) ------------------------------------------------------------------------

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env.bool("SECURE_PROXY_SSL_HEADER", False):
        # Only behind a proxy that sets X-Forwarded-Proto itself; otherwise clients could spoof it.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp), on every answer: the admin, the dashboard, the lead import, the API
# and its Swagger UI (the unsubscribe page sends a stricter one of its own, cam/views/__init__.py). Everything they
# load comes from this site, so the policy allows this site only. No page runs an inline script or an
# inline event handler: scripts are files (cam/static/cam/admin/*.js). A <style> or <script> element
# written into a template carries the request's nonce (`<style nonce="{{ request.csp_nonce }}">`); the
# header names the nonce only on pages that used it. Style attributes (`style="..."`) stay allowed: the
# admin's widgets and django-import-export's pages write them, and an attribute can neither run code nor
# select other elements.
# To extend it (a new admin theme, a CDN), add sources to the directive here, e.g. "font-src": [SELF, ...];
# docs/configuration.md keeps the list of directives and why each is there.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        # data: for the small icons the admin's and Swagger UI's style sheets embed.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        # No site may frame these pages (X-Frame-Options: DENY says the same to older browsers).
        "frame-ancestors": [NONE],
    },
}
# The admin's pages only (cam.middleware.AdminThemePolicyMiddleware): django-unfold's Alpine.js evaluates its
# attribute expressions (script-src 'unsafe-eval'), and the theme writes its colours in <style> elements
# without a nonce (style-src 'unsafe-inline', which a browser ignores if a nonce is listed). Everything still
# comes from this site.
CONTENT_SECURITY_POLICY_ADMIN = {
    "script-src": [SELF, NONCE, "'unsafe-eval'"],
    "style-src": [SELF, UNSAFE_INLINE],
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024, minimum=1024)

# --- Email ----------------------------------------------------------------------------------------

# Django's own mail (alert emails, admin notices). Campaign mail goes through each Mailbox's
# provider instead. EMAIL_URL: consolemail:// (default), smtp://user@host:587, smtp+ssl://...;
# the password comes from EMAIL_HOST_PASSWORD rather than the URL so it stays out of process lists.
_email = env.email_url("EMAIL_URL", "consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD") or _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "CAM <cam@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Each mailbox names its Resend key's variable (CAM_SECRET_RESEND_API_KEY by default, see
# cam.secrets); anymail's own key setting stays unset so the key is read in one place only.
ANYMAIL: dict[str, object] = {}

# --- CAM ------------------------------------------------------------------------------------------

AICMO_CAM_WORKER_ENABLED = env.bool("AICMO_CAM_WORKER_ENABLED", True)
# cam_worker keeps this to the second; the cluster's schedule runs in whole minutes, so it rounds this up
# to the next minute and the watchdog counts that period (cam.jobs.slots.worker_interval_seconds).
# Days of the worker cycle's and the watchdog's runs kept as they are; older ones become one row a day. At
# least the dashboard's week.
AICMO_CAM_JOB_RUN_RETENTION_DAYS = env.int("AICMO_CAM_JOB_RUN_RETENTION_DAYS", 14, minimum=7, maximum=3650)
AICMO_CAM_WORKER_INTERVAL_SECONDS = env.int("AICMO_CAM_WORKER_INTERVAL_SECONDS", 60, minimum=5, maximum=86_400)
AICMO_CAM_WORKER_ID = env.str("AICMO_CAM_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
AICMO_CAM_LOCK_TTL_SECONDS = env.int("AICMO_CAM_LOCK_TTL_SECONDS", 300, minimum=10)
# Emails one mailbox sends per batch (a mailbox with a minimum gap sends one at a time).
AICMO_CAM_SEND_BATCH_SIZE = env.int("AICMO_CAM_SEND_BATCH_SIZE", 50, minimum=1, maximum=1000)
# How far each mailbox's minimum gap varies, up or down, from one send to the next (cam.outreach.pacing).
AICMO_CAM_SEND_GAP_JITTER_PERCENT = env.int("AICMO_CAM_SEND_GAP_JITTER_PERCENT", 30, minimum=0, maximum=90)
# The wait before an email the provider could not take is tried again; it doubles with each attempt
# that reached the provider, up to 6 hours (a provider's Retry-After wins).
AICMO_CAM_SEND_RETRY_SECONDS = env.int("AICMO_CAM_SEND_RETRY_SECONDS", 60, minimum=1, maximum=3600)
AICMO_CAM_ALERT_EMAILS = env.emails("AICMO_CAM_ALERT_EMAILS")
# How long one alert's delivery may wait on Slack, a webhook or the mail server, per request.
AICMO_CAM_ALERT_TIMEOUT_SECONDS = env.int("AICMO_CAM_ALERT_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
# Hosts and ranges on loopback or a private network that requests to staff-chosen URLs (HTTP JSON lead
# sources, Slack and webhook alert channels) may reach; everything not on the public internet is
# refused otherwise, and cloud metadata addresses always are (see cam.egress).
AICMO_CAM_EGRESS_ALLOW = env.hosts_and_networks("AICMO_CAM_EGRESS_ALLOW")
AICMO_CAM_PUBLIC_URL = env.url("AICMO_CAM_PUBLIC_URL", "http://127.0.0.1:8000")
AICMO_CAM_POSTAL_ADDRESS = env.str("AICMO_CAM_POSTAL_ADDRESS")
# The folders CSV lead sources may read from (staff name a file; nothing outside these is opened).
AICMO_CAM_IMPORT_DIRS = [Path(p).resolve() for p in env.list("AICMO_CAM_IMPORT_DIRS", [str(BASE_DIR / "imports")])]
# Check that a harvested address's domain accepts mail (a DNS lookup per domain); syntax only when off.
AICMO_CAM_VERIFY_MX = env.bool("AICMO_CAM_VERIFY_MX", False)
# The DNS servers for that check; empty means the system's resolver configuration.
AICMO_CAM_DNS_NAMESERVERS = env.nameservers("AICMO_CAM_DNS_NAMESERVERS")
AICMO_CAM_DNS_TIMEOUT_SECONDS = env.int("AICMO_CAM_DNS_TIMEOUT_SECONDS", 5, minimum=1, maximum=60)
# Polling the mailboxes' IMAP folders for replies: the most of one message kept (and read) in bytes,
# how long one IMAP operation may take, and how many messages (and, at most, about how many bytes of
# them) are fetched and stored together. Each chunk costs a commit and a duplicate check; its bytes
# are held in memory until it is stored.
AICMO_CAM_RAW_MESSAGE_MAX_BYTES = env.int("AICMO_CAM_RAW_MESSAGE_MAX_BYTES", 1024 * 1024, minimum=1024,
                                          maximum=100 * 1024 * 1024)
AICMO_CAM_IMAP_TIMEOUT_SECONDS = env.int("AICMO_CAM_IMAP_TIMEOUT_SECONDS", 30, minimum=1, maximum=600)
AICMO_CAM_IMAP_FETCH_CHUNK = env.int("AICMO_CAM_IMAP_FETCH_CHUNK", 200, minimum=1, maximum=1000)
AICMO_CAM_IMAP_FETCH_CHUNK_BYTES = env.int("AICMO_CAM_IMAP_FETCH_CHUNK_BYTES", 16 * 1024 * 1024, minimum=1024,
                                           maximum=1024 * 1024 * 1024)
# A server that answers a byte at a time never trips a per-read timeout. So each IMAP step as a whole
# (connecting and logging in together, then each command; a fetch gets more for its size) has a
# deadline, and the poll step a budget for all mailboxes, polled side by side this many at a time.
# The budget's default: the worker interval, but no less than one deadline and no more than three.
AICMO_CAM_IMAP_DEADLINE_SECONDS = env.int("AICMO_CAM_IMAP_DEADLINE_SECONDS", 2 * AICMO_CAM_IMAP_TIMEOUT_SECONDS,
                                          minimum=1, maximum=3600)
AICMO_CAM_IMAP_POLL_CONCURRENCY = env.int("AICMO_CAM_IMAP_POLL_CONCURRENCY", 4, minimum=1, maximum=32)
AICMO_CAM_IMAP_POLL_BUDGET_SECONDS = env.int(
    "AICMO_CAM_IMAP_POLL_BUDGET_SECONDS",
    max(AICMO_CAM_IMAP_DEADLINE_SECONDS, min(AICMO_CAM_WORKER_INTERVAL_SECONDS, 3 * AICMO_CAM_IMAP_DEADLINE_SECONDS)),
    minimum=1, maximum=86_400)
# The most one campaign email may take over SMTP as a whole: opening the connection when it needs
# one, then MAIL, RCPT and DATA (EMAIL_TIMEOUT still limits each read).
AICMO_CAM_SMTP_DEADLINE_SECONDS = env.int("AICMO_CAM_SMTP_DEADLINE_SECONDS", 2 * EMAIL_TIMEOUT, minimum=1,
                                          maximum=3600)
# Resend's API for mailboxes on the Resend provider: where it is (tests point it at a local server),
# how long one request may take, and the most requests per second this process makes (Resend's
# default account limit is 2; a 429 is still honoured when several processes share the account).
AICMO_CAM_RESEND_API_URL = env.url("AICMO_CAM_RESEND_API_URL", "https://api.resend.com")
AICMO_CAM_RESEND_TIMEOUT_SECONDS = env.int("AICMO_CAM_RESEND_TIMEOUT_SECONDS", 30, minimum=1, maximum=300)
# ...and how long one request may take as a whole (the timeout above limits each read).
AICMO_CAM_RESEND_DEADLINE_SECONDS = env.int("AICMO_CAM_RESEND_DEADLINE_SECONDS", 2 * AICMO_CAM_RESEND_TIMEOUT_SECONDS,
                                            minimum=1, maximum=3600)
AICMO_CAM_RESEND_RATE_PER_SECOND = env.int("AICMO_CAM_RESEND_RATE_PER_SECOND", 2, minimum=1, maximum=1000)
# The keys that encrypt the secrets CAM has to store itself (OAuth2 refresh tokens; cam.crypto), newest
# first: the first encrypts, every one decrypts, so a new key is rotated in before the old one is dropped
# (manage.py cam_reencrypt). A malformed key stops start-up here; the message never repeats a key. While
# DEBUG is on and none is set, a key derived from SECRET_KEY stands in; with DEBUG off, check --deploy
# refuses to pass without one.
AICMO_CAM_ENCRYPTION_KEYS = env.fernet_keys("AICMO_CAM_ENCRYPTION_KEYS")
if not AICMO_CAM_ENCRYPTION_KEYS and DEBUG:
    import base64
    import hashlib

    AICMO_CAM_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(
        hashlib.sha256(f"cam-development-encryption:{SECRET_KEY}".encode()).digest()).decode("ascii")]
# OAuth2 mailboxes (cam.mail_oauth): the app CAM is registered as with each provider (docs/mailboxes-oauth.md).
# The redirect URI to register is <AICMO_CAM_PUBLIC_URL>/admin/cam/mailbox/oauth/callback/.
AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_ID = env.str("AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_ID")
AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_SECRET = env.str("AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_SECRET")
# "organizations" lets any work account sign in; a tenant id or domain keeps it to one organisation.
AICMO_CAM_OAUTH_MICROSOFT365_TENANT = env.str("AICMO_CAM_OAUTH_MICROSOFT365_TENANT", "organizations")
AICMO_CAM_OAUTH_GOOGLE_CLIENT_ID = env.str("AICMO_CAM_OAUTH_GOOGLE_CLIENT_ID")
AICMO_CAM_OAUTH_GOOGLE_CLIENT_SECRET = env.str("AICMO_CAM_OAUTH_GOOGLE_CLIENT_SECRET")
# Any other provider that speaks XOAUTH2: its endpoints and the scopes (space-separated) to ask for.
AICMO_CAM_OAUTH_GENERIC_CLIENT_ID = env.str("AICMO_CAM_OAUTH_GENERIC_CLIENT_ID")
AICMO_CAM_OAUTH_GENERIC_CLIENT_SECRET = env.str("AICMO_CAM_OAUTH_GENERIC_CLIENT_SECRET")
AICMO_CAM_OAUTH_GENERIC_AUTHORIZE_URL = env.str("AICMO_CAM_OAUTH_GENERIC_AUTHORIZE_URL")
AICMO_CAM_OAUTH_GENERIC_TOKEN_URL = env.str("AICMO_CAM_OAUTH_GENERIC_TOKEN_URL")
AICMO_CAM_OAUTH_GENERIC_SCOPES = env.str("AICMO_CAM_OAUTH_GENERIC_SCOPES")
# How long one request to a provider's token endpoint may take.
AICMO_CAM_OAUTH_TIMEOUT_SECONDS = env.int("AICMO_CAM_OAUTH_TIMEOUT_SECONDS", 20, minimum=1, maximum=120)
# Resend's webhook signing secret ("whsec_" and base64). The svix signature it checks is the
# webhook's only proof of origin (no basic auth): without the secret, cam.views refuses every
# webhook request. An unreadable value stops start-up here instead of failing each request;
# the message never repeats the secret.
AICMO_RESEND_WEBHOOK_SECRET = env.svix_secret("AICMO_RESEND_WEBHOOK_SECRET")
# None, not "", when unset: from "" anymail would build a signature checker that fails every request
# with a 500; with None, cam.views refuses each request with a clear 400.
ANYMAIL["RESEND_SIGNING_SECRET"] = AICMO_RESEND_WEBHOOK_SECRET or None

# Exported CSV cells are escaped by cam.admin.exports.SafeCsv (this setting strips one "=" only).
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False

# --- The admin's theme (django-unfold) ------------------------------------------------------------

def _static(path: str):
    # Resolved per request, once the static files storage is set up (the manifest in production).
    def url(request) -> str:
        from django.templatetags.static import static

        return static(path)

    return url


def _sidebar(request):
    from cam.admin.navigation import sidebar_navigation

    return sidebar_navigation(request)


def _tabs(request):
    from cam.admin.campaigns import campaign_tabs
    from cam.admin.desk import desk_tabs
    from cam.admin.lead_timeline import lead_tabs

    return campaign_tabs(request) + lead_tabs(request) + desk_tabs(request)


UNFOLD = {
    "SITE_TITLE": "CAM",
    "SITE_HEADER": "CAM",
    "SITE_SUBHEADER": "Client acquisition",
    "SITE_SYMBOL": "forward_to_inbox",
    "SITE_URL": "/admin/",
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": _static("cam/favicon.svg")}],
    "SHOW_VIEW_ON_SITE": False,
    # /admin/ opens on the dashboard: cam.admin.dashboard fills it.
    "DASHBOARD_CALLBACK": "cam.admin.dashboard.dashboard_callback",
    "STYLES": [_static("cam/admin/cam.css")],
    "COLORS": {
        # Indigo: CAM's colour, from Tailwind's palette (unfold's default is purple).
        "primary": {
            "50": "oklch(96.2% .018 272.314)", "100": "oklch(93% .034 272.788)",
            "200": "oklch(87% .065 274.039)", "300": "oklch(78.5% .115 274.713)",
            "400": "oklch(67.3% .182 276.935)", "500": "oklch(58.5% .233 277.117)",
            "600": "oklch(51.1% .262 276.966)", "700": "oklch(45.7% .24 277.023)",
            "800": "oklch(39.8% .195 277.366)", "900": "oklch(35.9% .144 278.697)",
            "950": "oklch(25.7% .09 281.288)",
        },
    },
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        # Grouped by the work rather than by app; cam/admin/navigation.py lists the groups.
        "navigation": _sidebar,
    },
    # A campaign's page in tabs (Settings, Sequence, Lead sources, Rules, Performance, Diagnose); a lead's
    # (Lead, Timeline); the replies' inbox (From people, Automatic mail).
    "TABS": _tabs,
}

# --- REST API -------------------------------------------------------------------------------------

# /api/cam/: an API key (`Authorization: Api-Key <key>`, read-only or full) or a staff session.
# Throttles count per key (or per user, or per address) in the shared cache above, so a limit holds
# across every web process.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cam.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cam.api.auth.CamAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["cam.api.throttling.CamRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "cam_read": env.rate("AICMO_CAM_API_READ_RATE", "600/min"),
        "cam_write": env.rate("AICMO_CAM_API_WRITE_RATE", "120/min"),
        "cam_jobs": env.rate("AICMO_CAM_API_JOB_RATE", "30/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "cam.api.pagination.CamPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": ["cam.api.parsers.CappedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_FILTER_BACKENDS": [],
    "EXCEPTION_HANDLER": "cam.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Failed API-key attempts (unknown, revoked or expired keys) one client address may make in a minute;
# past them, every key from it is refused with 429 until the minute ends (cam.api.key_guesses).
AICMO_CAM_API_KEY_FAILURES_PER_MINUTE = env.int("AICMO_CAM_API_KEY_FAILURES_PER_MINUTE", 10, minimum=1,
                                                maximum=10_000)
# The most one API request body may hold, in bytes; a bigger one is refused with a 400 before it is read.
AICMO_CAM_API_MAX_BODY_BYTES = env.int("AICMO_CAM_API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024,
                                       maximum=100 * 1024 * 1024)
# The most leads one bulk-create request may carry.
AICMO_CAM_API_BULK_MAX_ITEMS = env.int("AICMO_CAM_API_BULK_MAX_ITEMS", 500, minimum=1, maximum=10_000)

SPECTACULAR_SETTINGS = {
    "TITLE": "CAM API",
    "DESCRIPTION": "Metrics and orchestration for CAM: campaigns, leads, replies, suppressions, alerts, "
    "the worker and jobs. Authenticate with `Authorization: Api-Key <key>` or a staff session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its readers are for the API's users: a key or a staff session, as for the API.
    "SERVE_PERMISSIONS": ["cam.api.auth.CamAccess"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "cam.api.schema.document_common_errors", "cam.api.schema.document_no_nul"],
    # Several models have a `status`: name each choice set after its model, so the components are stable
    # and readable (CampaignStatusEnum) instead of hash-suffixed (Status3c7Enum).
    "ENUM_NAME_OVERRIDES": {
        "CampaignStatusEnum": "cam.models.Campaign.Status",
        "LeadStatusEnum": "cam.models.Lead.Status",
        "OutboundEmailStatusEnum": "cam.models.OutboundEmail.Status",
        "JobExecutionStatusEnum": "cam.models.JobExecution.Status",
        "JobExecutionTriggerEnum": "cam.models.JobExecution.Trigger",
        "WorkerHeartbeatStatusEnum": "cam.models.WorkerHeartbeat.Status",
    },
    "SCHEMA_PATH_PREFIX": "/api/cam",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from the drf-spectacular-sidecar package, served by this site: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Logging --------------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not valid: expected DEBUG, INFO, WARNING or ERROR.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # imapclient logs whole messages at DEBUG; keep them out of the logs even when LOG_LEVEL=DEBUG.
    "loggers": {"django.db.backends": {"level": "INFO"}, "imapclient": {"level": "INFO"},
                # flufl.bounce narrates every detector it runs at INFO.
                "flufl.bounce": {"level": "WARNING"},
                # django-axes logs every login and clean-up at INFO; failures and lockouts are WARNING.
                "axes": {"level": "WARNING"}},
}
