"""Strict readers for environment variables.

django-environ parses the common shapes (database and cache URLs, lists), but it is lenient where
an operator's typo should stop start-up: ``DEBUG=ture`` silently means False and ``PORT=80x`` raises
a bare ``ValueError`` that names nothing. Every reader here raises ``ImproperlyConfigured`` with the
variable's name, the value it found and what it expected.
"""

from __future__ import annotations

import base64
import builtins
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "sqlite"}
EMAIL_SCHEMES = {"consolemail", "smtp", "smtps", "smtp+tls", "smtp+ssl", "filemail", "memorymail", "dummymail"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_NAME = re.compile(r"^\.?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?$")
_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


class StrictEnv:
    """Typed access to ``os.environ`` (or any mapping) that refuses bad values by name."""

    def __init__(self, environ_mapping=None) -> None:
        self._env = environ.Env()
        if environ_mapping is not None:
            self._env.ENVIRON = environ_mapping

    @property
    def raw(self):
        return self._env.ENVIRON

    def _fail(self, name: str, value: str, expected: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")

    def is_set(self, name: str) -> bool:
        return name in self.raw

    # The readers are named after what they return, which hides those types in this class's
    # annotations from here on: they are spelt ``builtins.str`` and so on below.
    def str(self, name: builtins.str, default: builtins.str = "") -> builtins.str:
        return self.raw.get(name, default).strip()

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        if name not in self.raw:
            return default
        value = self.raw[name].strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self._fail(name, self.raw[name], "true or false (1/0, yes/no, on/off)")

    def int(self, name: builtins.str, default: builtins.int, *, minimum: builtins.int | None = None,
            maximum: builtins.int | None = None) -> builtins.int:
        if name not in self.raw or not self.raw[name].strip():
            return default
        raw = self.raw[name].strip()
        try:
            value = int(raw)
        except ValueError:
            raise self._fail(name, raw, "a whole number") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise self._fail(name, raw, f"a whole number {bounds}")
        return value

    def list(self, name: builtins.str, default: builtins.list[builtins.str] | None = None, *,
             item: Callable[[builtins.str], Any] | None = None,
             expected: builtins.str = "a comma-separated list") -> builtins.list[Any]:
        if name not in self.raw or not self.raw[name].strip():
            return list(default or [])
        items = [part.strip() for part in self.raw[name].split(",") if part.strip()]
        if item is None:
            return items
        out = []
        for part in items:
            try:
                out.append(item(part))
            except (ValueError, ValidationError):
                raise self._fail(name, self.raw[name], f"{expected} ({part!r} is not)") from None
        return out

    def emails(self, name: builtins.str) -> builtins.list[builtins.str]:
        def one(value: builtins.str) -> builtins.str:
            validate_email(value)
            return value

        return self.list(name, item=one, expected="a comma-separated list of email addresses")

    def url(self, name: builtins.str, default: builtins.str, *,
            schemes: tuple[builtins.str, ...] = ("http", "https")) -> builtins.str:
        raw = self.str(name, default)
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            raise self._fail(name, raw, f"an absolute URL starting with {' or '.join(s + '://' for s in schemes)}")
        return raw.rstrip("/")

    def rate(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """A request rate as DRF's throttles read it: ``120/min``, ``10/s``, ``5000/day``."""
        value = self.str(name, default)
        if not _RATE.fullmatch(value):
            raise self._fail(name, value, "a number of requests per second, minute, hour or day, like 120/min")
        return value

    def env_name(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """The *name* of another environment variable (secrets are referred to by name, never stored)."""
        raw = self.str(name, default)
        if not _ENV_NAME.match(raw):
            raise self._fail(name, raw, "the name of an environment variable (letters, digits, underscores)")
        return raw

    def db(self, name: builtins.str, default: builtins.str) -> dict:
        raw = self.str(name, default) or default
        expected = "a PostgreSQL or SQLite URL such as postgres://user@host:5432/db or sqlite:////path/db.sqlite3"
        if urlsplit(raw).scheme not in DATABASE_SCHEMES:
            raise self._fail(name, raw, expected)
        try:
            return environ.Env.db_url_config(raw)
        except Exception as exc:  # django-environ raises several types for malformed URLs
            raise self._fail(name, raw, f"{expected} ({exc})") from None

    def email_url(self, name: builtins.str, default: builtins.str) -> dict:
        raw = self.str(name, default) or default
        expected = "an email URL such as consolemail://, smtp://user@host:587 or smtp+tls://user@host:587"
        if urlsplit(raw).scheme not in EMAIL_SCHEMES:
            raise self._fail(name, raw, expected)
        try:
            return environ.Env.email_url_config(raw)
        except Exception as exc:
            raise self._fail(name, raw, f"{expected} ({exc})") from None

    def nameservers(self, name: builtins.str) -> builtins.list[tuple[builtins.str, builtins.int]]:
        """DNS servers as ``ip`` or ``ip:port`` (IPv6 as ``[ip]:port``), comma-separated."""

        def one(value: builtins.str) -> tuple[builtins.str, builtins.int]:
            host, port = value, "53"
            if value.startswith("["):
                host, _, rest = value[1:].partition("]")
                port = rest.removeprefix(":") or "53"
            elif value.count(":") == 1:
                host, port = value.split(":")
            ipaddress.ip_address(host)
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(value)
            return host, int(port)

        return self.list(name, item=one, expected="a comma-separated list of IP addresses, each with an optional :port")

    def hosts_and_networks(self, name: builtins.str) -> builtins.list[builtins.str]:
        """Host names (``crm.internal``; ``.internal`` for a domain and every name under it), addresses and
        CIDR ranges (``10.20.0.0/16``, ``fd12::/48``), comma-separated; each returned in one spelling."""

        def one(value: builtins.str) -> builtins.str:
            try:
                return str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                pass
            host = value.lower()
            if len(host) > 253 or not _HOST_NAME.match(host):
                raise ValueError(value)
            return host.rstrip(".") or host

        return self.list(name, item=one, expected="a comma-separated list of host names, addresses and CIDR "
                                                  "ranges such as crm.internal, 10.20.0.0/16")

    def svix_secret(self, name: builtins.str) -> builtins.str:
        """A webhook signing secret as svix issues it: ``whsec_`` and base64. The error never echoes it."""
        raw = self.str(name)
        if not raw:
            return ""
        key = raw.removeprefix("whsec_")
        try:
            valid = bool(base64.b64decode(key + "=" * (-len(key) % 4), validate=True))
        except ValueError:
            valid = False
        if not valid:
            raise ImproperlyConfigured(f"{name} is not valid: expected the signing secret the provider shows for "
                                       f"the webhook (whsec_ followed by base64).")
        return raw

    def fernet_keys(self, name: builtins.str) -> builtins.list[builtins.str]:
        """Fernet keys (32 bytes in URL-safe base64), comma-separated, newest first. The error names the
        position of a bad key, never the key."""
        if name not in self.raw or not self.raw[name].strip():
            return []
        keys = [part.strip() for part in self.raw[name].split(",") if part.strip()]
        for position, key in enumerate(keys, start=1):
            try:
                valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32 and len(key) == 44
            except (ValueError, UnicodeError):
                valid = False
            if not valid:
                raise ImproperlyConfigured(
                    f"{name} is not valid: key {position} of {len(keys)} is not a Fernet key (32 random bytes in "
                    f"URL-safe base64, 44 characters). Generate one with `python manage.py cam_reencrypt "
                    f"--new-key`.")
        if len(set(keys)) != len(keys):
            raise ImproperlyConfigured(f"{name} is not valid: the same key is listed twice.")
        return keys

    def origins(self, name: builtins.str) -> builtins.list[builtins.str]:
        def one(value: builtins.str) -> builtins.str:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(value)
            return value.rstrip("/")

        return self.list(name, item=one, expected="a comma-separated list of origins such as https://cam.example.com")
