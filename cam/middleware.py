"""Checks on every request, before any view reads it."""

from __future__ import annotations

from urllib.parse import unquote_plus

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework.views import APIView

from cam.api.errors import is_api_path

NUL_MESSAGE = "The request holds a NUL character (%00), which nothing on this site accepts."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _holds_nul(value: str) -> bool:
    return "\x00" in value


class RefuseNulMiddleware:
    """A NUL character in the path, the query string, a cookie or a form's fields is answered 400, in
    JSON under /api/ and in plain text elsewhere.

    No value CAM stores or looks up may hold one, and PostgreSQL refuses it in any text it is given:
    left alone, a NUL in an admin search or filter (``?q=%00``), a login form, an object's id in the
    URL or the session cookie reaches the database and fails there as a 500. Uploaded files are not
    looked at (a CSV import reports its NUL lines one by one). The REST API's views read their bodies
    themselves (JSON only, each field refusing NUL with its own message), so their bodies are left to
    them: parsing a form here would take the body from them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The raw query string decoded once, as QueryDict will: parsing it here would raise, for too
        # many fields, before the code that answers that.
        if (_holds_nul(request.path_info) or _holds_nul(unquote_plus(request.META.get("QUERY_STRING", "")))
                or any(_holds_nul(value) for value in request.COOKIES.values())):
            return self._refuse(request)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method not in BODY_METHODS or request.content_type not in FORM_TYPES:
            return None
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None
        # Parsed here rather than in the view (the CSRF check, just after, reads it anyway); the view
        # gets the fields already parsed.
        if any(_holds_nul(key) or any(_holds_nul(value) for value in values) for key, values in request.POST.lists()):
            return self._refuse(request)
        return None

    @staticmethod
    def _refuse(request) -> HttpResponse:
        if is_api_path(request.path_info):
            return JsonResponse({"detail": NUL_MESSAGE}, status=400)
        return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")


class AdminThemePolicyMiddleware:
    """The admin's theme (django-unfold) needs two things the site-wide Content-Security-Policy refuses,
    granted to the admin's pages only (the API, its docs and the unsubscribe page keep the strict policy):

    - ``script-src 'unsafe-eval'``: Alpine.js, which draws the theme's menus, tabs and dropdowns, evaluates
      the expressions written in its ``x-data``/``x-on`` attributes with the Function constructor. Scripts
      still load only from this site; no inline ``<script>`` runs.
    - ``style-src 'unsafe-inline'``: the theme writes its colours in ``<style>`` elements without a nonce,
      and a browser ignores 'unsafe-inline' whenever a nonce is listed, so these pages list none for styles.

    Placed after django-csp's middleware, so its ``process_response`` (which runs later) reads the
    replacement set here."""

    def __init__(self, get_response) -> None:
        from django.conf import settings

        self.get_response = get_response
        self.replace = getattr(settings, "CONTENT_SECURITY_POLICY_ADMIN", {})

    @staticmethod
    def _admin_prefix() -> str | None:
        # Looked up per request: the URL configuration may differ per request (and may have no admin).
        from django.urls import NoReverseMatch, reverse

        try:
            return reverse("admin:index")
        except NoReverseMatch:
            return None

    def __call__(self, request):
        response = self.get_response(request)
        prefix = self._admin_prefix() if self.replace else None
        if prefix and request.path.startswith(prefix):
            response._csp_replace = {**self.replace, **(getattr(response, "_csp_replace", None) or {})}
        return response
