"""Who may call the API: an API key (read-only or full) or an active staff session."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions
from rest_framework_api_key.permissions import KeyParser

from cam.models import CamAPIKey

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key <key>``. No header: not this scheme (a session may still apply).
    A header with an unknown, revoked or expired key: 401 at once, never a fall-through."""

    key_parser = KeyParser()

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(f"{KEYWORD} "):
            return None
        key = self.key_parser.get(request)
        if not key:
            raise exceptions.AuthenticationFailed("The Authorization header holds no API key.")
        try:
            api_key = CamAPIKey.objects.get_from_key(key)
        except CamAPIKey.DoesNotExist:
            api_key = None
        if api_key is None or not api_key.is_valid(key) or api_key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (with this challenge) rather than 403 when no credentials are given.
        return KEYWORD


def api_key_of(request) -> CamAPIKey | None:
    return request.auth if isinstance(request.auth, CamAPIKey) else None


def actor_of(request) -> str:
    """Who made a request, as CAM records it (lead events, status reasons, a reply's ``classified_by``,
    a suppression's ``source``): ``api-key:<name>`` (the prefix for a key with no name) or
    ``staff:<username>``."""
    key = api_key_of(request)
    if key is not None:
        return f"api-key:{key.name or key.prefix}"
    return f"staff:{request.user.get_username()}"


class CamAccess(permissions.BasePermission):
    """Reads need any valid key or a staff session; writes and job runs need a full key or staff."""

    message = "This API key is read-only: it cannot change anything or run jobs."

    def has_permission(self, request, view) -> bool:
        key = api_key_of(request)
        if key is not None:
            return request.method in permissions.SAFE_METHODS or not key.read_only
        user = request.user
        if user is not None and user.is_authenticated:
            if not (user.is_active and user.is_staff):
                raise exceptions.PermissionDenied("Only staff users may use the API with a session.")
            return True
        raise exceptions.NotAuthenticated("Send an API key (Authorization: Api-Key <key>) or log in as staff.")


class Public(permissions.BasePermission):
    """For the health endpoint only: load balancers call it without a key."""

    def has_permission(self, request, view) -> bool:
        return True
