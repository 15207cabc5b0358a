"""A stand-in OAuth2 authorization server on 127.0.0.1 (built on ``tests.servers.http``).

It plays Microsoft's or Google's part for the mailbox tests: ``/authorize`` (the browser lands here and
is sent straight back to the redirect URI with a code, as after a person consented), ``/token`` (the
authorization-code grant with PKCE S256 checked, and the refresh-token grant), ``/revoke`` and
``/introspect`` (RFC 7662, which Dovecot's ``oauth2`` passdb asks, and which the SMTP stand-in asks
through ``valid``). Access tokens live ``access_seconds`` of the server's clock, which a test moves
with ``expire_access_tokens()``; ``revoke(refresh_token)`` kills a grant as a person or an admin would.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from tests.servers.http import HttpTestServer, ReceivedRequest, Reply

CLIENT_ID = "cam-test-client"
CLIENT_SECRET = "cam-test-client-secret"


@dataclass
class Grant:
    user: str
    refresh_token: str
    revoked: bool = False
    access_tokens: set[str] = field(default_factory=set)


class OAuthServer:
    def __init__(self, *, user: str = "alice@example.com") -> None:
        self.user = user  # who "signs in" at /authorize
        self.http = HttpTestServer()
        self.grants: dict[str, Grant] = {}  # by refresh token
        self.active: dict[str, str] = {}  # access token → user, while valid
        self.codes: dict[str, tuple[str, str, str]] = {}  # code → (challenge, redirect_uri, user)
        self.refreshes = 0
        self.authorize_requests: list[ReceivedRequest] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> OAuthServer:
        self.http.start()
        self.http.reply("/authorize", self._authorize)
        self.http.reply("/token", self._token)
        self.http.reply("/revoke", self._revoke)
        self.http.reply("/introspect", self._introspect)
        return self

    def stop(self) -> None:
        self.http.stop()

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return self.http.url(path)

    # --- what a test does ---------------------------------------------------------------------------

    def grant(self, user: str | None = None) -> str:
        """A refresh token for ``user``, as if someone had connected before; returns it."""
        with self._lock:
            refresh = f"refresh-{next(self._ids)}"
            self.grants[refresh] = Grant(user or self.user, refresh)
        return refresh

    def valid(self, user: str, token: str) -> bool:
        with self._lock:
            return self.active.get(token, "").lower() == user.lower()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (its lifetime ran out)."""
        with self._lock:
            self.active.clear()

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            grant = self.grants[refresh_token]
            grant.revoked = True
            for token in grant.access_tokens:
                self.active.pop(token, None)

    # --- serving ------------------------------------------------------------------------------------

    def _issue(self, grant: Grant) -> dict:
        access = f"access-{next(self._ids)}"
        grant.access_tokens.add(access)
        self.active[access] = grant.user
        claims = base64.urlsafe_b64encode(json.dumps({"email": grant.user}).encode()).decode().rstrip("=")
        return {"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": grant.refresh_token, "id_token": f"e30.{claims}.sig"}

    def _authorize(self, request: ReceivedRequest) -> Reply:
        self.authorize_requests.append(request)
        if request.param("client_id") != CLIENT_ID or request.param("code_challenge_method") != "S256":
            return Reply(400, "unknown client, or no PKCE")
        code = f"code-{next(self._ids)}"
        with self._lock:
            self.codes[code] = (request.param("code_challenge") or "", request.param("redirect_uri") or "", self.user)
        target = f"{request.param('redirect_uri')}?{urlencode({'code': code, 'state': request.param('state')})}"
        return Reply(302, "", headers={"Location": target})

    def _token(self, request: ReceivedRequest) -> Reply:
        form = {name: values[0] for name, values in parse_qs(request.body.decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return Reply(401, {"error": "invalid_client"})
        with self._lock:
            if form.get("grant_type") == "authorization_code":
                challenge, redirect_uri, user = self.codes.pop(form.get("code", ""), ("", "", ""))
                verifier = form.get("code_verifier", "")
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if not challenge or computed != challenge or form.get("redirect_uri") != redirect_uri:
                    return Reply(400, {"error": "invalid_grant", "error_description": "bad code or PKCE verifier"})
                refresh = f"refresh-{next(self._ids)}"
                grant = self.grants[refresh] = Grant(user, refresh)
                return Reply(200, self._issue(grant))
            if form.get("grant_type") == "refresh_token":
                self.refreshes += 1
                grant = self.grants.get(form.get("refresh_token", ""))
                if grant is None or grant.revoked:
                    return Reply(400, {"error": "invalid_grant", "error_description": "The grant was revoked."})
                return Reply(200, self._issue(grant))
        return Reply(400, {"error": "unsupported_grant_type"})

    def _revoke(self, request: ReceivedRequest) -> Reply:
        token = parse_qs(request.body.decode()).get("token", [""])[0]
        if token in self.grants:
            self.revoke(token)
        return Reply(200, "")

    def _introspect(self, request: ReceivedRequest) -> Reply:
        token = parse_qs(request.body.decode()).get("token", [""])[0]
        with self._lock:
            user = self.active.get(token)
        return Reply(200, {"active": True, "username": user} if user else {"active": False})
