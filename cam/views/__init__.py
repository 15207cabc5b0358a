"""The public pages: one-click unsubscribe, and the provider webhook. Thin doors onto the services."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from cam.models import Lead
from cam.outreach.unsubscribe import (
    ONE_CLICK_FIELD,
    ONE_CLICK_VALUE,
    InvalidUnsubscribeToken,
    lead_from_token,
    masked_email,
    unsubscribe_by_link,
)
from cam.suppressions import suppressed_addresses

# The pages load nothing from anywhere and post only to themselves; their one <style> element carries the
# request's nonce. Stricter than the site's policy (settings.CONTENT_SECURITY_POLICY), which django-csp
# leaves alone when a view has set its own.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")


def _public_page(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    # The token in the URL is a key to the lead: keep it out of search engines and other sites' logs.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    # django-csp's middleware sets csp_nonce on the request; Django's stubs know nothing of it.
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(nonce=request.csp_nonce)  # type: ignore[attr-defined]
    return response


@csrf_exempt  # RFC 8058: providers post without cookies or a CSRF token; the signed token is the check.
@login_not_required
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """POST unsubscribes at once (idempotent); GET only shows a button, since link scanners open every link."""
    try:
        lead = lead_from_token(token)
    except InvalidUnsubscribeToken:
        return _public_page(request, "cam/unsubscribe_invalid.html", {}, status=400)
    if request.method == "POST":
        unsubscribe_by_link(lead=lead, one_click=request.POST.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE)
        return _public_page(request, "cam/unsubscribed.html", {"email": masked_email(lead.email)})
    return _public_page(request, "cam/unsubscribe.html", {
        "email": masked_email(lead.email),
        # The suppression list, not only the status: a won lead that unsubscribed keeps WON.
        "already_unsubscribed": lead.status == Lead.Status.UNSUBSCRIBED or bool(suppressed_addresses([lead.email])),
    })


@csrf_exempt  # a provider's request: the svix signature is its proof, checked by the view
@login_not_required
def resend_tracking_webhook(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Resend's tracking webhook (``cam.views.resend``), imported at its first request."""
    return _resend_tracking_view()(request, *args, **kwargs)


@functools.cache
def _resend_tracking_view() -> Callable[..., HttpResponse]:
    from cam.views.resend import ResendTrackingWebhookView

    return ResendTrackingWebhookView.as_view()
