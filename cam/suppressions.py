"""The suppression list: who must never be mailed, by address and by whole domain — reading it and changing it.

A row in ``Suppression`` is all it takes to stop mail: planning (``cam.outreach.planning``) blocks a
suppressed lead before an email is created, and sending (``cam.outreach.sending``) cancels an email
already queued for a suppressed address, both through ``suppressed_addresses`` here. So a row added
here (by hand or by API) stops sending exactly as one added in the admin does. Unsubscribes, bounces
and complaints go through ``cam.leads`` instead, which also changes the lead's status.

Addresses and domains are compared in the one spelling ``cam.addresses`` gives them (the
domain in Unicode, lower case), on both sides: a lead at ``exämple.com`` is suppressed by a row for
``xn--exmple-cua.com`` and the other way round, whichever spelling either was stored in. A domain
covers its subdomains: a row for ``example.com`` stops ``anna@mail.example.com``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from cam.addresses import (
    RejectedAddress,
    address_key,
    address_spellings,
    domain_and_parents,
    domain_key,
    domain_spellings,
    normalize_address,
    normalize_domain,
)
from cam.lookups import one_of
from cam.models import Suppression
from cam.models.fields import max_length

SOURCE_MAX_LENGTH = max_length(Suppression, "source")
EMAIL_MAX_LENGTH = max_length(Suppression, "email")
DOMAIN_MAX_LENGTH = max_length(Suppression, "domain")


def suppressed_addresses(emails: Iterable[str], *, among: tuple[str, str] | None = None) -> dict[str, str]:
    """The given addresses that are suppressed, each (as given) with the reason for staff.

    An address is suppressed by a row for itself, for its domain or for any domain above it, in any
    spelling. One query for the whole set, whatever its size: every spelling of every address and of
    every domain they sit under, looked up together. ``among`` is for addresses already in the database
    (a batch of leads staged by ``cam.pipeline.lead_insert``): two subqueries naming every spelling of
    the addresses and of the domains above them, which the query then reads instead of taking the
    spellings as parameters — two joins on the list's unique indexes."""
    emails = list(dict.fromkeys(emails))
    if not emails:
        return {}
    if among is not None:
        # Each half restricted as its unique index is, so the planner may probe it.
        by_address = Suppression.objects.filter(email__in=RawSQL(among[0], ())).exclude(email="")
        by_domain = Suppression.objects.filter(domain__in=RawSQL(among[1], ())).exclude(domain="")
        rows = by_address.values_list("email", "domain").union(by_domain.values_list("email", "domain"), all=True)
    else:
        spelled_emails = {spelling for email in emails for spelling in address_spellings(email)}
        spelled_domains = {spelling for email in emails
                           for domain in domain_and_parents(domain_key(address_key(email).rpartition("@")[2]))
                           for spelling in domain_spellings(domain)}
        # Each half also says its column is not empty, as its unique index is partial: PostgreSQL infers that
        # from a list of at most 100 values, and otherwise reads the whole list.
        rows = Suppression.objects.filter(
            (one_of(Suppression, "email", spelled_emails, array_type="text") & ~Q(email=""))
            | (one_of(Suppression, "domain", spelled_domains, array_type="text") & ~Q(domain=""))
        ).order_by().values_list("email", "domain")
    blocked_emails, blocked_domains = set(), set()
    for email, domain in rows:
        if email:
            blocked_emails.add(address_key(email))
        else:
            blocked_domains.add(domain_key(domain))
    found: dict[str, str] = {}
    if not blocked_emails and not blocked_domains:
        return found
    for email in emails:
        key = address_key(email)
        if key in blocked_emails:
            found[email] = f"{key} is on the suppression list"
            continue
        covering = domain_and_parents(domain_key(key.rpartition("@")[2]))
        listed = next((domain for domain in covering if domain in blocked_domains), None)
        if listed is not None:
            under = "" if listed == covering[0] else f", which covers {covering[0]}"
            found[email] = f"the domain {listed} is on the suppression list{under}"
    return found


def suppressions_covering(email: str) -> QuerySet[Suppression]:
    """The rows that stop mail to ``email``: its own, its domain's and any parent domain's, in any
    spelling (the rows ``suppressed_addresses`` finds for it), as one query."""
    key = address_key(email)
    domains = domain_and_parents(domain_key(key.rpartition("@")[2]))
    return Suppression.objects.filter(
        Q(email__in=address_spellings(email))
        | Q(domain__in={spelling for domain in domains for spelling in domain_spellings(domain)}))


def suppression_normalize(*, email: str = "", domain: str = "") -> tuple[str, str]:
    """The address or domain as the list stores and compares it: spelled exactly as a lead's address
    (``cam.addresses.normalize_address``: trimmed, the domain in Unicode even when given in
    punycode, lower case), so ``Üser@XN--EXMPLE-CUA.COM`` is stored as ``üser@exämple.com``. Any
    address a lead may hold is accepted, also at reserved domains such as ``.test``: refusing to
    suppress an address a lead already has would be worse than suppressing an odd one. Raises
    ``ValidationError`` by field."""
    email, domain = (email or "").strip(), (domain or "").strip()
    if bool(email) == bool(domain):
        message = "Give either an email address or a domain, not both." if email else \
            "Give an email address or a domain."
        raise ValidationError({"email": [message], "domain": [message]})
    if email:
        try:
            email = normalize_address(email, allow_reserved=True).email
        except RejectedAddress as exc:
            raise ValidationError({"email": [str(exc)]}) from None
        if len(email) > EMAIL_MAX_LENGTH:
            raise ValidationError({"email": [f"The address is longer than {EMAIL_MAX_LENGTH} characters."]})
        return email, ""
    try:
        domain = normalize_domain(domain)
    except RejectedAddress as exc:
        raise ValidationError({"domain": [str(exc)]}) from None
    if len(domain) > DOMAIN_MAX_LENGTH:
        raise ValidationError({"domain": [f"The domain is longer than {DOMAIN_MAX_LENGTH} characters."]})
    return "", domain


def suppressions_listing(*, email: str = "", domain: str = "") -> QuerySet[Suppression]:
    """The rows that list this (normalised) address or domain, in any spelling it may be stored under
    (rows saved before addresses were normalised may hold punycode)."""
    if email:
        return Suppression.objects.filter(email__in=address_spellings(email))
    return Suppression.objects.filter(domain__in=domain_spellings(domain))


@transaction.atomic
def suppression_add(*, email: str = "", domain: str = "", reason: str = Suppression.Reason.MANUAL,
                    source: str, note: str = "") -> tuple[Suppression, bool]:
    """Suppress ``email`` or every address at ``domain``; returns the row and whether it is new.

    An address or domain already on the list, in any spelling (see ``suppression_normalize``), keeps
    its row as it is (its first reason is the one that matters); calling again is safe, also
    concurrently. Raises ``ValidationError`` for a bad address, domain or reason.
    """
    if reason not in Suppression.Reason.values:
        raise ValidationError({"reason": [f"Unknown reason {reason!r}."]})
    email, domain = suppression_normalize(email=email, domain=domain)
    existing = suppressions_listing(email=email, domain=domain).order_by("pk").first()
    if existing is not None:
        return existing, False
    lookup = {"email": email} if email else {"domain": domain}
    return Suppression.objects.get_or_create(**lookup, defaults={"reason": reason, "source": source[:SOURCE_MAX_LENGTH],
                                                                 "note": note})


def suppression_remove(*, suppression: Suppression) -> None:
    """Take an address or domain off the list: it may be mailed again by leads still in a sequence.
    Leads that unsubscribed or bounced keep their status."""
    suppression.delete()
