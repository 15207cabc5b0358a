"""The domains mailboxes send from, and what DNS last said about their authentication."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SendingDomain(models.Model):
    """One domain that mailboxes send from (the part of their from-address after the ``@``).

    ``checks`` holds the last verdict per check (``cam.domains.checks``): a list of
    ``{"name", "verdict", "summary", "fix"}`` with the verdict ``pass``, ``warn`` or ``fail``. A domain
    that fails SPF or DMARC holds its mailboxes' leads, unless staff overrode that with a reason.
    """

    class Verdict(models.TextChoices):
        UNCHECKED = "unchecked", "Not checked yet"
        PASS = "pass", "Pass"
        WARN = "warn", "Warn"
        FAIL = "fail", "Fail"

    domain = models.CharField(max_length=253, unique=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.UNCHECKED,
                               help_text="The worst of the checks' verdicts.")
    holds_mail = models.BooleanField(
        default=False, help_text="SPF or DMARC fails: its mailboxes' leads are held unless overridden.")
    checks = models.JSONField(default=list, blank=True)
    dkim_selectors = models.CharField(
        "DKIM selectors", max_length=255, blank=True,
        help_text="Selectors to look for, separated by commas or spaces; empty means the provider's usual ones.")
    checked_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(
        blank=True, help_text="Why staff let its mailboxes send although SPF or DMARC fails.")
    override_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    override_at = models.DateTimeField(null=True, blank=True)
    history = models.JSONField(
        default=list, blank=True,
        help_text="What staff did to it, oldest first: {at, by, action, reason} for each override and hold.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    @property
    def is_overridden(self) -> bool:
        return bool(self.override_at)

    @property
    def holds_leads(self) -> bool:
        """Whether the planner holds its mailboxes' leads now."""
        return self.holds_mail and not self.is_overridden

    def selector_list(self) -> list[str]:
        return [part for part in self.dkim_selectors.replace(",", " ").split() if part]
