"""Who may call the API: an API key (read-only or full) or an active staff session."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions
from rest_framework_api_key.permissions import KeyParser

from cam.api.key_guesses import key_guess_failed, key_guesses_check
from cam.leads import staff_actor
from cam.models import CamAPIKey

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key <key>``. No header: not this scheme (a session may still apply).
    A header with an unknown, revoked or expired key: 401 at once, never a fall-through, and one failed
    attempt counted against the client's address; past the limit, 429 (``cam.api.key_guesses``)."""

    key_parser = KeyParser()

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(f"{KEYWORD} "):
            return None
        key_guesses_check(request)  # before the key is looked at: a guesser learns nothing more
        key = self.key_parser.get(request)
        if not key:
            key_guess_failed(request)
            raise exceptions.AuthenticationFailed("The Authorization header holds no API key.")
        try:
            api_key = CamAPIKey.objects.get_from_key(key)
        except CamAPIKey.DoesNotExist:
            api_key = None
        # get_from_key has checked the key against its hash (and refused a revoked one).
        if api_key is None or api_key.has_expired:
            key_guess_failed(request)
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
    return staff_actor(request.user)


# What a staff session needs of a model, as in the admin: the model's view (or change) permission to
# read; to write, add for a create (a POST on a collection), change for an update or an action on one
# object (a POST on it: pause, resume, reclassify, a status change), delete for a delete.
VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"


def _model_of(view):
    """The model a view serves, from its ``queryset`` or ``get_queryset()``; None for a view with neither."""
    from rest_framework.generics import GenericAPIView  # not at the top: DRF's settings import this module

    queryset = getattr(view, "queryset", None)
    if queryset is None:
        get_queryset = getattr(type(view), "get_queryset", None)
        if get_queryset is None or get_queryset is GenericAPIView.get_queryset:
            return None  # DRF's own would only assert that there is no queryset
        queryset = view.get_queryset()
    return getattr(queryset, "model", None)


def _action_of(request, view) -> str:
    if request.method in permissions.SAFE_METHODS:
        return VIEW
    if request.method == "DELETE":
        return DELETE
    if request.method == "POST" and not getattr(view, "detail", False):
        return ADD
    return CHANGE


def required_permissions(request, view) -> list[str] | None:
    """The permissions (``app_label.codename``) a staff session needs for this request, all of them;
    None when the view declares none and serves no model (the schema and its docs).

    A view without a model queryset declares them: ``required_permissions = {"GET": [...], "POST": [...]}``
    (HEAD and OPTIONS use the GET entry; a method it does not name is for superusers only)."""
    declared = getattr(view, "required_permissions", None)
    if declared is not None:
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if method not in declared:
            raise exceptions.PermissionDenied(f"No permission grants {request.method} here: only a superuser may.")
        return list(declared[method])
    model = _model_of(view)
    if model is None:
        return None
    return [f"{model._meta.app_label}.{_action_of(request, view)}_{model._meta.model_name}"]


def _holds(perm: str, granted: set[str]) -> bool:
    # As in the admin, the change permission also lets one view.
    app_label, _, codename = perm.partition(".")
    return perm in granted or (codename.startswith("view_")
                               and f"{app_label}.change_{codename.removeprefix('view_')}" in granted)


def _describe(perm: str) -> str:
    app_label, _, codename = perm.partition(".")
    if codename.startswith("view_"):
        return f"{perm} (or {app_label}.change_{codename.removeprefix('view_')})"
    return perm


class CamAccess(permissions.BasePermission):
    """Reads need any valid key or a staff session; writes and job runs need a full key or staff.
    A staff session also needs the Django permission the request calls for (see ``required_permissions``),
    as the admin does; a superuser has them all."""

    message = "This API key is read-only: it cannot change anything or run jobs."

    def has_permission(self, request, view) -> bool:
        key = api_key_of(request)
        if key is not None:
            return request.method in permissions.SAFE_METHODS or not key.read_only
        user = request.user
        if user is not None and user.is_authenticated:
            if not (user.is_active and user.is_staff):
                raise exceptions.PermissionDenied("Only staff users may use the API with a session.")
            return self.has_model_permission(request, view, user)
        raise exceptions.NotAuthenticated("Send an API key (Authorization: Api-Key <key>) or log in as staff.")

    @staticmethod
    def has_model_permission(request, view, user) -> bool:
        if user.is_superuser:
            return True
        if getattr(view, request.method.lower(), None) is None:
            return True  # no handler for the method: the view answers 405 and does nothing
        needed = required_permissions(request, view)
        if not needed:
            return True
        # Loaded once per user object (the auth backend caches them on it), however many checks follow.
        granted = user.get_all_permissions()
        missing = [perm for perm in needed if not _holds(perm, granted)]
        if missing:
            raise exceptions.PermissionDenied(
                "Your account lacks the permission " + ", ".join(_describe(perm) for perm in missing) + ".")
        return True


class Public(permissions.BasePermission):
    """For the health endpoint only: load balancers call it without a key."""

    def has_permission(self, request, view) -> bool:
        return True
