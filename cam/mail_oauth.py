"""OAuth2 mailboxes (Microsoft 365, Google Workspace, any other provider): connecting, and access tokens.

Microsoft turned off password logins for IMAP in Exchange Online, and SMTP AUTH with a password is off
by default; Google Workspace admins often forbid app passwords. A mailbox with ``auth=oauth2`` logs in
to SMTP and IMAP with SASL XOAUTH2 instead, with an access token got from its refresh token.

- ``authorization_start`` builds the provider's authorization URL for the authorization-code flow with
  PKCE (S256); the admin's "Connect" button sends the browser there. The state and the code verifier
  stay in the person's session. ``authorization_finish`` (the callback) checks the state, trades the
  code for tokens and stores the refresh token, encrypted (``cam.crypto``).
- ``access_token`` gives a token valid for at least ``EXPIRY_MARGIN`` more, refreshing it when the
  cached one is older; the login code calls it again with ``force=True`` once after the server refused
  a cached token (a 535 or ``AUTHENTICATIONFAILED``), and never more than once.
- A grant the provider no longer honours (``invalid_grant``: revoked, expired, password changed) marks
  the mailbox ``needs_reconnect`` and alerts a person, once: the planner then holds its leads
  (``mailbox_disconnected``) and no sender tries it until someone connects it again. Nothing loops.

The token requests are authlib's (``OAuth2Session``); nothing here parses or signs a token itself,
except reading the connected account's address from the ID token the provider just handed over on
its own TLS connection (only shown to people, never trusted for a login).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from cam.alerts.service import alert_queue
from cam.crypto import Sealed, reveal
from cam.models import HumanAlertLog, Mailbox

logger = logging.getLogger(__name__)

# A cached access token is used only while it has at least this long to live: a batch of sends or a
# poll must not find it expired half-way through.
EXPIRY_MARGIN = timedelta(minutes=5)
# Where the session keeps the flows a person has started, by state.
SESSION_KEY = "cam_mailbox_oauth"
# Grants the provider will not honour again: a person must connect the mailbox anew.
DEAD_GRANT_ERRORS = {"invalid_grant", "unauthorized_client", "invalid_client"}


class OAuthProblem(Exception):
    """Connecting or refreshing failed; the message says what and what to do. Never carries a token."""


class ReconnectNeeded(OAuthProblem):
    """The mailbox has no usable grant: a person must press Connect again."""


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    label: str
    authorize_url: str
    token_url: str
    scopes: str
    client_id: str
    client_secret: str
    # Extra parameters of the authorization request (Google gives a refresh token only when asked so).
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def env_prefix(self) -> str:
        return f"AICMO_CAM_OAUTH_{self.name.upper()}"


def provider_config(name: str) -> ProviderConfig:
    """The preset for ``name`` (``Mailbox.OAuthProvider``), with the app's client id and secret from the
    environment. Raises ``OAuthProblem`` naming the variables when the app is not registered."""
    if name == Mailbox.OAuthProvider.MICROSOFT365:
        tenant = settings.AICMO_CAM_OAUTH_MICROSOFT365_TENANT
        config = ProviderConfig(
            name=name, label="Microsoft 365",
            authorize_url=f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            token_url=f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            scopes="https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All "
                   "offline_access openid email",
            client_id=settings.AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_ID,
            client_secret=settings.AICMO_CAM_OAUTH_MICROSOFT365_CLIENT_SECRET,
            authorize_params=(("prompt", "select_account"),))
    elif name == Mailbox.OAuthProvider.GOOGLE:
        config = ProviderConfig(
            name=name, label="Google",
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",
            scopes="https://mail.google.com/ openid email",
            client_id=settings.AICMO_CAM_OAUTH_GOOGLE_CLIENT_ID,
            client_secret=settings.AICMO_CAM_OAUTH_GOOGLE_CLIENT_SECRET,
            authorize_params=(("access_type", "offline"), ("prompt", "consent")))
    elif name == Mailbox.OAuthProvider.GENERIC:
        config = ProviderConfig(
            name=name, label="OAuth2 provider",
            authorize_url=settings.AICMO_CAM_OAUTH_GENERIC_AUTHORIZE_URL,
            token_url=settings.AICMO_CAM_OAUTH_GENERIC_TOKEN_URL,
            scopes=settings.AICMO_CAM_OAUTH_GENERIC_SCOPES,
            client_id=settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_ID,
            client_secret=settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_SECRET)
        if not (config.authorize_url and config.token_url):
            raise OAuthProblem(f"The generic OAuth2 provider has no addresses: set {config.env_prefix}_AUTHORIZE_URL "
                               f"and {config.env_prefix}_TOKEN_URL.")
    else:
        raise OAuthProblem(f"Choose the mailbox's OAuth2 provider (Microsoft 365, Google or generic), not {name!r}.")
    if not (config.client_id and config.client_secret):
        raise OAuthProblem(f"CAM is not registered with {config.label}: set {config.env_prefix}_CLIENT_ID and "
                           f"{config.env_prefix}_CLIENT_SECRET (see docs/mailboxes-oauth.md).")
    return config


def redirect_uri() -> str:
    """The callback address to register with every provider."""
    return settings.AICMO_CAM_PUBLIC_URL + reverse("admin:cam_mailbox_oauth_callback")


def _session(config: ProviderConfig, **kwargs: Any) -> OAuth2Session:
    return OAuth2Session(config.client_id, config.client_secret, scope=config.scopes,
                         token_endpoint_auth_method="client_secret_post", code_challenge_method="S256",
                         default_timeout=settings.AICMO_CAM_OAUTH_TIMEOUT_SECONDS, **kwargs)


# --- connecting ---------------------------------------------------------------------------------


def authorization_start(mailbox: Mailbox, session: Any) -> str:
    """The provider's authorization URL for ``mailbox``; remembers the state and PKCE verifier in
    ``session`` (the person's Django session) for the callback."""
    if mailbox.auth != Mailbox.Auth.OAUTH2:
        raise OAuthProblem(f"Mailbox {mailbox.name!r} logs in with a password: set its login to OAuth2 first.")
    config = provider_config(mailbox.oauth_provider)
    verifier = generate_token(64)
    client = _session(config, redirect_uri=redirect_uri())
    url, state = client.create_authorization_url(
        config.authorize_url, code_verifier=verifier,
        login_hint=mailbox.smtp_username or mailbox.from_email, **dict(config.authorize_params))
    flows = dict(session.get(SESSION_KEY) or {})
    flows[state] = {"mailbox": mailbox.pk, "verifier": verifier}
    session[SESSION_KEY] = dict(list(flows.items())[-5:])  # a few tabs at once, not an ever-growing list
    return str(url)


def authorization_finish(*, session: Any, state: str, code: str, error: str = "", error_description: str = "",
                         now: datetime | None = None) -> Mailbox:
    """Finish the flow the callback belongs to: check ``state`` against the session, trade ``code`` for
    tokens and store them on the mailbox. Raises ``OAuthProblem`` with what went wrong."""
    flows = dict(session.get(SESSION_KEY) or {})
    flow = flows.pop(state, None) if state else None
    session[SESSION_KEY] = flows
    if flow is None:
        raise OAuthProblem("This sign-in was not started from this browser session (or was already used): "
                           "press Connect on the mailbox again.")
    mailbox = Mailbox.objects.filter(pk=flow["mailbox"]).first()
    if mailbox is None:
        raise OAuthProblem("The mailbox this sign-in was for has been deleted meanwhile.")
    if error:
        raise OAuthProblem(f"The provider did not connect mailbox {mailbox.name!r}: {error}"
                           f"{f' ({error_description})' if error_description else ''}.")
    if not code:
        raise OAuthProblem("The provider came back without an authorization code: press Connect again.")
    config = provider_config(mailbox.oauth_provider)
    client = _session(config, redirect_uri=redirect_uri())
    try:
        token = client.fetch_token(config.token_url, grant_type="authorization_code", code=code,
                                   code_verifier=flow["verifier"])
    except OAuthError as exc:
        raise OAuthProblem(f"{config.label} refused the authorization code for mailbox {mailbox.name!r}: "
                           f"{exc.error}{f' ({exc.description})' if exc.description else ''}.") from None
    except (requests.RequestException, ValueError) as exc:
        raise OAuthProblem(f"Could not reach {config.label}'s token endpoint ({_host(config.token_url)}): "
                           f"{type(exc).__name__}.") from None
    if not token.get("refresh_token"):
        raise OAuthProblem(f"{config.label} gave no refresh token: make sure the app asks for offline access "
                           f"(the scopes in docs/mailboxes-oauth.md), then press Connect again.")
    now = now or timezone.now()
    mailbox.oauth_refresh_token = Sealed.of(token["refresh_token"], what=f"mailbox {mailbox.name!r}'s refresh token")
    mailbox.oauth_access_token = Sealed.of(token.get("access_token", ""))
    mailbox.oauth_access_expires_at = _expiry(token, now)
    mailbox.oauth_account = _account(token) or mailbox.smtp_username or mailbox.from_email
    mailbox.oauth_refreshed_at = now
    mailbox.oauth_connected_at = now
    mailbox.needs_reconnect = False
    mailbox.save(update_fields=["oauth_refresh_token", "oauth_access_token", "oauth_access_expires_at",
                                "oauth_account", "oauth_refreshed_at", "oauth_connected_at", "needs_reconnect",
                                "updated_at"])
    return mailbox


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _expiry(token: dict[str, Any], now: datetime) -> datetime:
    try:
        seconds = int(token.get("expires_in") or 3600)
    except (TypeError, ValueError):
        seconds = 3600
    return now + timedelta(seconds=seconds)


def _account(token: dict[str, Any]) -> str:
    """The address in the ID token's claims (``email``, or Microsoft's ``preferred_username``), if any."""
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return ""
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return ""
    if not isinstance(claims, dict):
        return ""
    return str(claims.get("email") or claims.get("preferred_username") or "")[:254]


# --- access tokens ------------------------------------------------------------------------------


def login_user(mailbox: Mailbox, *, protocol: str) -> str:
    """The user name XOAUTH2 sends: the protocol's username, or the connected account, or the address."""
    username = mailbox.smtp_username if protocol == "smtp" else mailbox.imap_username
    return username or mailbox.oauth_account or mailbox.from_email


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Microsoft and Google document it."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauth_login(mailbox: Mailbox, login: Callable[[str], None], *,
                refused: tuple[type[BaseException], ...]) -> None:
    """Run ``login`` with the mailbox's access token; when the server refuses a cached token (``refused``),
    refresh it and try once more. A token refreshed for this very login is not retried: that refusal is
    the server's last word, and it is raised."""
    refreshed_before = mailbox.oauth_refreshed_at
    token = access_token(mailbox)
    try:
        login(token)
    except refused:
        if mailbox.oauth_refreshed_at != refreshed_before:
            raise
        logger.info("The server refused mailbox %s's cached access token; refreshing it once", mailbox.pk)
        login(access_token(mailbox, force=True))


def access_token(mailbox: Mailbox, *, force: bool = False, now: datetime | None = None) -> str:
    """An access token for ``mailbox`` valid for at least ``EXPIRY_MARGIN``; refreshed when the cached one is
    older, or when ``force`` (once, after a server refused it). Raises ``ReconnectNeeded`` when the mailbox
    has no usable grant, ``OAuthProblem`` when the provider could not be asked (try again later)."""
    now = now or timezone.now()
    if mailbox.needs_reconnect or not mailbox.oauth_refresh_token:
        raise ReconnectNeeded(f"Mailbox {mailbox.name!r} must be connected to its OAuth2 provider again: press "
                              f"Connect on its page in the admin.")
    expires = mailbox.oauth_access_expires_at
    if not force and mailbox.oauth_access_token and expires is not None and expires - EXPIRY_MARGIN > now:
        return reveal(mailbox.oauth_access_token)
    return _refresh(mailbox, now)


def _refresh(mailbox: Mailbox, now: datetime) -> str:
    config = provider_config(mailbox.oauth_provider)
    client = _session(config)
    try:
        token = client.refresh_token(config.token_url, refresh_token=reveal(mailbox.oauth_refresh_token))
    except OAuthError as exc:
        said = f"{exc.error}{f' ({exc.description})' if exc.description else ''}"
        if exc.error in DEAD_GRANT_ERRORS:
            mailbox_disconnect(mailbox, why=f"{config.label} no longer accepts its grant: {said}")
            raise ReconnectNeeded(f"{config.label} no longer accepts the grant of mailbox {mailbox.name!r} ({said}): "
                                  f"press Connect on its page in the admin.") from None
        raise OAuthProblem(f"{config.label} refused to refresh the access token of mailbox {mailbox.name!r}: "
                           f"{said}.") from None
    except (requests.RequestException, ValueError) as exc:
        raise OAuthProblem(f"Could not reach {config.label}'s token endpoint ({_host(config.token_url)}) to refresh "
                           f"the access token of mailbox {mailbox.name!r}: {type(exc).__name__}.") from None
    access = str(token.get("access_token") or "")
    if not access:
        raise OAuthProblem(f"{config.label} answered the refresh of mailbox {mailbox.name!r} without an access token.")
    mailbox.oauth_access_token = Sealed.of(access)
    mailbox.oauth_access_expires_at = _expiry(token, now)
    mailbox.oauth_refreshed_at = now
    fields = ["oauth_access_token", "oauth_access_expires_at", "oauth_refreshed_at"]
    if token.get("refresh_token"):  # Microsoft hands out a new refresh token with each refresh
        mailbox.oauth_refresh_token = Sealed.of(str(token["refresh_token"]))
        fields.append("oauth_refresh_token")
    # Only these columns: a sender's batch must not write back what it read of the mailbox minutes ago.
    Mailbox.objects.filter(pk=mailbox.pk).update(**{name: getattr(mailbox, name) for name in fields})
    return access


def mailbox_disconnect(mailbox: Mailbox, *, why: str) -> bool:
    """Mark ``mailbox`` as needing a new connection and alert a person; True the first time only.

    One conditional UPDATE decides who marks it, so however many senders and pollers fail on the same
    dead grant, one alert goes out. The planner holds the mailbox's leads from its next run on.
    """
    with transaction.atomic():
        marked = Mailbox.objects.filter(pk=mailbox.pk, needs_reconnect=False).update(
            needs_reconnect=True, oauth_access_token="", oauth_access_expires_at=None, updated_at=timezone.now())
        mailbox.needs_reconnect = True
        if not marked:
            return False
        logger.warning("Mailbox %s must be reconnected: %s", mailbox.pk, why)
        connected = mailbox.oauth_connected_at.isoformat() if mailbox.oauth_connected_at else "never"
        alert_queue(
            alert_type=HumanAlertLog.AlertType.MAILBOX_DISCONNECTED,
            title=f"Mailbox {mailbox.name} must be reconnected",
            body=(f"{why}.\n\nCAM sends nothing from {mailbox.from_email} and reads no replies there until someone "
                  f"presses Connect on the mailbox in the admin ({settings.AICMO_CAM_PUBLIC_URL}"
                  f"{reverse('admin:cam_mailbox_change', args=[mailbox.pk])}). Its leads are held meanwhile."),
            idempotency_key=f"mailbox-disconnected:{mailbox.pk}:{connected}")
    return True
