"""Start-up checks (``manage.py check``) for mistakes in the environment a deployment is easy to make.

The deploy checks (``manage.py check --deploy``) catch settings that work on a laptop and fail quietly in
production: links in real email that point at localhost, a footer without the postal address the law asks
for, a login lockout that counts every client as the proxy.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from cam import crypto
from cam.egress import address_kind
from cam.encryption import encrypted_fields

RENAMED_SECRETS = {"AICMO_RESEND_API_KEY": "CAM_SECRET_RESEND_API_KEY"}
# Names that always mean this machine (RFC 6761) or a network no recipient can reach.
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".home.arpa")


@checks.register(checks.Tags.security)
def renamed_secret_variables(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A secret still set under a name CAM no longer reads would silently stop whatever used it."""
    return [
        checks.Warning(f"{old} is set but no longer read: secrets are read only from variables starting with "
                       f"CAM_SECRET_.", hint=f"Rename it to {new} (the default of every mailbox's Resend key).",
                       id="cam.W001")
        for old, new in RENAMED_SECRETS.items() if os.environ.get(old)
    ]


def _unreachable_host(host: str) -> str:
    """Why recipients on the internet cannot reach ``host`` ("a loopback address"); "" when they may.

    Only what the URL itself says: a check must not wait on DNS, and a name resolving to a private
    address from inside the deployment's network says nothing about where it resolves outside."""
    name = host.lower().rstrip(".")
    if name == "localhost" or any(name.endswith(suffix) for suffix in LOCAL_NAMES if suffix.startswith(".")):
        return "a name that only resolves on this machine or its own network"
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        return ""
    return address_kind(literal)


@checks.register(checks.Tags.security, deploy=True)
def public_url(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every unsubscribe link and alert link starts with ``AICMO_CAM_PUBLIC_URL``: in production it must be
    the https address the world reaches CAM at (mail providers offer one-click unsubscribe only for https)."""
    if settings.DEBUG:
        return []
    url = settings.AICMO_CAM_PUBLIC_URL
    parts = urlsplit(url)
    errors: list[checks.CheckMessage] = []
    if parts.scheme != "https":
        errors.append(checks.Error(
            f"AICMO_CAM_PUBLIC_URL={url!r} is not an https address: the unsubscribe link in every campaign "
            "email and the links in alerts start with it.",
            hint="Set AICMO_CAM_PUBLIC_URL to the public https address of this site, e.g. https://cam.example.com.",
            id="cam.E001"))
    why = _unreachable_host(parts.hostname or "")
    if why:
        errors.append(checks.Error(
            f"AICMO_CAM_PUBLIC_URL={url!r} points at {why}: recipients clicking an unsubscribe link would "
            "never reach CAM.",
            hint="Set AICMO_CAM_PUBLIC_URL to the address people reach this site at from the internet.",
            id="cam.E002"))
    return errors


@checks.register(checks.Tags.security, deploy=True)
def postal_address(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Commercial email must carry the sender's postal address (CAN-SPAM, and most of Europe's rules)."""
    if settings.DEBUG or settings.AICMO_CAM_POSTAL_ADDRESS:
        return []
    return [checks.Error(
        "AICMO_CAM_POSTAL_ADDRESS is not set: campaign emails would go out without the sender's postal "
        "address in their footer.",
        hint="Set AICMO_CAM_POSTAL_ADDRESS to the sender's postal address on one line, "
             "e.g. 'Example Ltd, 1 High Street, London N1 1AA, UK'.",
        id="cam.E003")]


@checks.register(checks.Tags.security, deploy=True)
def trusted_proxies(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Behind a proxy every request comes from the proxy's address: without a count of trusted proxies the
    login lockout and the API's per-address limits would treat all clients as one."""
    if settings.DEBUG or not getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        return []
    if settings.AICMO_CAM_TRUSTED_PROXY_COUNT:
        return []
    return [checks.Warning(
        "SECURE_PROXY_SSL_HEADER is on but AICMO_CAM_TRUSTED_PROXY_COUNT is 0: every client would be seen at "
        "the proxy's address, so a login lockout or a per-address limit would hit everyone at once.",
        hint="Set AICMO_CAM_TRUSTED_PROXY_COUNT to the number of proxies that append to X-Forwarded-For "
             "(1 for one nginx, Caddy or load balancer).",
        id="cam.W002")]


@checks.register(checks.Tags.security, deploy=True)
def encryption_keys(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Refresh tokens are encrypted with ``AICMO_CAM_ENCRYPTION_KEYS``; in development a key derived from
    ``SECRET_KEY`` stands in, which production must not rely on (a new SECRET_KEY would lose every token)."""
    if settings.DEBUG or settings.AICMO_CAM_ENCRYPTION_KEYS:
        return []
    return [checks.Error(
        f"{crypto.KEYS_SETTING} is not set: CAM could not store the secrets it must keep (the refresh tokens of "
        "mailboxes connected with OAuth2), and cannot read those already stored.",
        hint=f"Generate a key with `python manage.py cam_reencrypt --new-key` and set {crypto.KEYS_SETTING} to "
             "it (newest first when there are several).",
        id="cam.E004")]


@checks.register(checks.Tags.database)
def encryption_keys_open_stored_secrets(app_configs, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """A key replaced instead of rotated (or a list with a typo that is still a valid key) leaves every stored
    secret unreadable: say so when the database is checked (``migrate`` does, and the container runs it at
    start), before mailboxes fail one by one. One stored value of each field is tried."""
    if not databases:
        return []
    errors: list[checks.CheckMessage] = []
    for model, field in encrypted_fields():
        try:
            sealed = (model._default_manager.exclude(**{field.name: ""}).order_by("-pk")
                      .values_list(field.name, flat=True).first())
        except DatabaseError:  # the table or column is not there yet: migrate is about to create it
            return []
        if not sealed:
            continue
        try:
            sealed.reveal()
        except crypto.EncryptionKeyError as exc:
            errors.append(checks.Error(str(exc), hint=(
                f"Rotate keys by putting the new key first and keeping the old ones after it in "
                f"{crypto.KEYS_SETTING}; run `manage.py cam_reencrypt`, and only then drop an old key."),
                obj=model, id="cam.E005"))
    return errors
