"""The writes of sending-domain health: check a domain, override its hold with a reason, hold it again.

Every door (the mailbox save, the daily job, the admin buttons, the API, ``manage.py cam_domain_check``)
calls these. Staff actions are recorded on the domain (``override_*`` and ``history``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet, Value
from django.db.models.functions import Lower, StrIndex, Substr
from django.utils import timezone

from cam.domains.checks import domain_checks, holds_mail, worst
from cam.domains.dns import Resolver
from cam.domains.providers import provider_profile
from cam.models import InboundEmail, Mailbox, SendingDomain

logger = logging.getLogger(__name__)
# A check started by saving a mailbox waits at most this long in all, so a slow DNS server cannot hold
# up the person saving; what it could not ask only warns, and the daily check asks again.
ON_SAVE_BUDGET_SECONDS = 3.0


class DomainProblem(ValueError):
    """A staff action that cannot be done; the message says why."""


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def domain_mailboxes(domain: str) -> list[Mailbox]:
    return list(Mailbox.objects.filter(from_email__iendswith=f"@{domain}"))


def domain_check(domain: str | SendingDomain, *, now: datetime | None = None, resolver: Resolver | None = None,
                 budget: float | None = None) -> SendingDomain:
    """Ask DNS about ``domain`` (created when new) and store each check's verdict; returns the domain."""
    now = now or timezone.now()
    if isinstance(domain, SendingDomain):
        row = domain
    else:
        row, _ = SendingDomain.objects.get_or_create(domain=domain_of("@" + domain))
    profiles = [provider_profile(mailbox) for mailbox in domain_mailboxes(row.domain)]
    checks = domain_checks(row.domain, profiles=profiles, selectors=row.selector_list(),
                           dns=resolver or Resolver(budget=budget))
    row.checks = [check.as_dict() for check in checks]
    row.verdict = worst(check.verdict for check in checks)
    row.holds_mail = holds_mail(checks)
    row.checked_at = now
    row.save(update_fields=["checks", "verdict", "holds_mail", "checked_at", "updated_at"])
    return row


def domains_check_all(*, now: datetime | None = None) -> dict[str, Any]:
    """Check the domain of every active mailbox (the daily job); counts per verdict and the domains held."""
    domains = sorted({domain_of(email) for email in
                      Mailbox.objects.filter(is_active=True).values_list("from_email", flat=True)})
    counts: dict[str, Any] = {"domains": 0, "pass": 0, "warn": 0, "fail": 0, "held": []}
    resolver = Resolver()
    for domain in domains:
        row = domain_check(domain, now=now, resolver=resolver)
        counts["domains"] += 1
        counts[row.verdict] += 1
        if row.holds_leads:
            counts["held"].append(domain)
    return counts


def mailbox_domain_check_on_commit(mailbox: Mailbox) -> None:
    """After the mailbox's save commits, check its domain with a short timeout; a failure is logged, never
    raised, so saving a mailbox always works."""
    domain = mailbox.sending_domain

    def check() -> None:
        try:
            domain_check(domain, budget=ON_SAVE_BUDGET_SECONDS)
        except Exception:  # the save has happened; the daily check tries again
            logger.exception("Checking the sending domain %s after a mailbox save failed", domain)

    transaction.on_commit(check)


def _record(row: SendingDomain, *, action: str, actor: str, reason: str, now: datetime) -> None:
    row.history = [*row.history, {"at": now.isoformat(), "by": actor, "action": action, "reason": reason}]


@transaction.atomic
def domain_override(domain: SendingDomain, *, reason: str, actor: str, user: AbstractBaseUser | None = None,
                    now: datetime | None = None) -> SendingDomain:
    """Let ``domain``'s mailboxes send although SPF or DMARC fails; ``reason`` is required and recorded with
    ``actor`` (``staff:<name>``, ``api-key:<name>``) and the staff ``user`` when a person did it."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainProblem("Say why this domain may send although it fails SPF or DMARC: the reason is recorded.")
    now = now or timezone.now()
    row = SendingDomain.objects.select_for_update().get(pk=domain.pk)
    row.override_reason, row.override_at = reason, now
    row.override_by_id = user.pk if user is not None else None
    _record(row, action="override", actor=actor, reason=reason, now=now)
    row.save(update_fields=["override_reason", "override_by", "override_at", "history", "updated_at"])
    return row


@transaction.atomic
def domain_hold_again(domain: SendingDomain, *, actor: str, reason: str = "",
                      now: datetime | None = None) -> SendingDomain:
    """Withdraw an override: while SPF or DMARC fails, the domain's mailboxes hold their leads again."""
    now = now or timezone.now()
    row = SendingDomain.objects.select_for_update().get(pk=domain.pk)
    if not row.is_overridden:
        raise DomainProblem(f"{row.domain} is not overridden, so there is nothing to withdraw.")
    row.override_reason, row.override_by, row.override_at = "", None, None
    _record(row, action="hold", actor=actor, reason=(reason or "").strip(), now=now)
    row.save(update_fields=["override_reason", "override_by", "override_at", "history", "updated_at"])
    return row


def held_domains(domains: set[str]) -> set[str]:
    """Of ``domains``, those whose mailboxes hold their leads now (SPF or DMARC fails, not overridden). One query."""
    if not domains:
        return set()
    return set(SendingDomain.objects.filter(domain__in=domains, holds_mail=True, override_at__isnull=True)
               .values_list("domain", flat=True))


def with_domain_held(mailboxes: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """``mailboxes`` with ``domain_held``: whether the domain each sends from holds its mail now (as
    ``held_domains`` says), read in the same query, for lists of mailboxes."""
    domain = Lower(Substr(F("from_email"), StrIndex(F("from_email"), Value("@")) + 1))
    held = SendingDomain.objects.filter(domain=OuterRef("_sending_domain"), holds_mail=True, override_at__isnull=True)
    return mailboxes.annotate(_sending_domain=domain, domain_held=Exists(held))


def domains_needing_attention(*, limit: int = 5) -> list[SendingDomain]:
    """The domains that warn or fail, those holding leads first, at most ``limit`` + 1 (the one more says
    there are more). One query."""
    return list(SendingDomain.objects.filter(verdict__in=[SendingDomain.Verdict.WARN, SendingDomain.Verdict.FAIL])
                .order_by("-holds_mail", "override_at", "-verdict", "domain")
                .only("pk", "domain", "verdict", "holds_mail", "override_at", "checks")[:limit + 1])


# How far back a domain's page counts the authentication-failure reports it received.
AUTH_FAILURE_DAYS = 30


def auth_failure_reports(domains: Iterable[str], *, days: int = AUTH_FAILURE_DAYS,
                         now: datetime | None = None) -> dict[str, int]:
    """How many authentication-failure reports (RFC 6591: a receiver saw mail claiming the domain fail SPF,
    DKIM or DMARC; ``InboundEmail.Category.AUTH_FAILURE``) named each of ``domains`` in the last ``days``
    days; domains with none are left out. One query, on the replies' (category, created_at) index.

    Some are about mail CAM never sent (someone spoofing the domain), so a count says "look at the
    reports", not "the set-up is broken"; the domain's checks say that."""
    names = sorted({name.lower() for name in domains if name})
    if not names:
        return {}
    since = (now or timezone.now()) - timedelta(days=days)
    rows = (InboundEmail.objects.filter(category=InboundEmail.Category.AUTH_FAILURE, created_at__gte=since,
                                        reported_domain__in=names)
            .values("reported_domain").annotate(reports=Count("id")).order_by())
    return {row["reported_domain"]: row["reports"] for row in rows}

