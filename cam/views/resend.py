"""Resend's tracking webhook: anymail's view, accepting only requests signed with Resend's signing secret.

Imported by ``cam.views`` at the webhook's first request, not with the URLs: svix, which checks the
signatures, took a quarter of the start of every management command.
"""

from __future__ import annotations

import json
import logging

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.resend import ResendTrackingWebhookView as AnymailResendTrackingWebhookView
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def _refused(reason: str, detail: str) -> JsonResponse:
    """A 400 with one warning line that names ``reason``."""
    logger.warning("Resend webhook refused: %s", reason)
    response = JsonResponse({"detail": detail}, status=400)
    # Django's own "Bad Request: <path>" line would only repeat ours without the reason.
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag, not in its stubs
    return response


class ResendTrackingWebhookView(AnymailResendTrackingWebhookView):
    """Anymail's Resend tracking webhook, accepting only requests signed with Resend's signing secret.

    Anymail checks the svix signature when ``ANYMAIL["RESEND_SIGNING_SECRET"]`` is set; without it
    anymail would fall back to optional basic auth and, with no ``WEBHOOK_SECRET`` either, accept
    anything. Here a missing secret refuses every request (400) instead, so the endpoint is never
    open. Basic auth is not used: the signature already proves the request came from Resend.

    Every refusal is a 400 with a JSON ``detail`` and one warning line in the log naming the reason:
    a wrong or missing signature (anyone on the internet can cause one, so no traceback), and a
    signed body that is not a Resend event, which anymail would fail on with a 500 (and svix would
    then deliver again and again).
    """

    @property
    def warn_if_no_basic_auth(self) -> bool:
        # Anymail warns on each request when neither check is set up; this view refuses those
        # requests instead, so the warning would only be noise.
        return False

    @warn_if_no_basic_auth.setter
    def warn_if_no_basic_auth(self, value: bool) -> None:
        pass

    def validate_request(self, request: HttpRequest) -> None:
        # Anymail runs every validate_request in the class chain, this one first.
        if self._svix_webhook is None:
            raise AnymailWebhookValidationFailure(
                "AICMO_RESEND_WEBHOOK_SECRET is not set, so no signature can be checked.")

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            self.run_validators(request)
        except AnymailWebhookValidationFailure as exc:
            # svix's own words ("No matching signature found", "Message timestamp too old") say which check failed.
            reason = f"the signature does not check out ({exc.__cause__})" if exc.__cause__ else str(exc)
            return _refused(reason, "The request's signature could not be verified.")
        try:
            events = self.parse_events(request)
        except UnreadableWebhookBody as exc:
            return _refused(str(exc), str(exc))
        for event in events:
            self.signal.send(sender=self.__class__, event=event, esp_name=self.esp_name)
        return HttpResponse()

    def parse_events(self, request: HttpRequest) -> list:
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise UnreadableWebhookBody("The body is not JSON.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise UnreadableWebhookBody("The body is not a Resend event: a JSON object with a \"type\".")
        try:
            return [self.esp_to_anymail_event(payload, request)]
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            # anymail reads the event's parts without checking their shapes (a "headers" that is not a list).
            raise UnreadableWebhookBody("The body is not a Resend event: its fields are not shaped as "
                                        "Resend's.") from None


class UnreadableWebhookBody(ValueError):
    """A correctly signed webhook body that is not an event we can read."""
