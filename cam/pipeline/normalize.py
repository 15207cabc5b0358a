"""Turning a harvested address into the one CAM stores, or a reason to reject it."""

from __future__ import annotations

from dataclasses import dataclass

import dns.resolver
from django.conf import settings
from email_validator import EmailNotValidError, caching_resolver, validate_email

# Addresses that reach a department rather than a person: fine to keep, but they score lower.
ROLE_LOCAL_PARTS = frozenset({
    "abuse", "accounts", "admin", "administrator", "billing", "buchhaltung", "careers", "contact", "contacto",
    "enquiries", "feedback", "finance", "hello", "help", "hr", "info", "inquiries", "jobs", "kontakt", "legal",
    "mail", "marketing", "media", "no-reply", "noreply", "office", "orders", "postmaster", "press", "privacy",
    "rechnung", "recruiting", "sales", "service", "support", "team", "vertrieb", "webmaster", "welcome",
})

FREE_MAIL_DOMAINS = frozenset({
    "163.com", "aol.com", "freenet.de", "free.fr", "gmail.com", "gmx.at", "gmx.ch", "gmx.de", "gmx.net",
    "googlemail.com", "hotmail.co.uk", "hotmail.com", "hotmail.de", "hotmail.fr", "icloud.com", "laposte.net",
    "libero.it", "live.com", "mac.com", "mail.com", "mail.ru", "me.com", "msn.com", "naver.com", "orange.fr",
    "outlook.com", "outlook.de", "posteo.de", "proton.me", "protonmail.com", "qq.com", "t-online.de",
    "wanadoo.fr", "web.de", "yahoo.co.uk", "yahoo.com", "yahoo.de", "yahoo.fr", "yandex.com", "yandex.ru",
    "zoho.com",
})


class RejectedAddress(ValueError):
    """The record's address cannot be used; the message says why, for staff."""


@dataclass(frozen=True)
class NormalizedAddress:
    email: str
    domain: str
    is_role_account: bool
    is_free_mail: bool


def mx_resolver() -> dns.resolver.Resolver:
    """A DNS resolver for deliverability checks that remembers answers, so each domain is asked once."""
    resolver = None
    if settings.AICMO_CAM_DNS_NAMESERVERS:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host for host, _ in settings.AICMO_CAM_DNS_NAMESERVERS]
        resolver.nameserver_ports = dict(settings.AICMO_CAM_DNS_NAMESERVERS)
    return caching_resolver(timeout=settings.AICMO_CAM_DNS_TIMEOUT_SECONDS, dns_resolver=resolver)


def normalize_address(raw: object, *, check_mx: bool = False,
                      dns_resolver: dns.resolver.Resolver | None = None) -> NormalizedAddress:
    """Validate and normalise one address (syntax only unless ``check_mx``).

    Raises ``RejectedAddress`` naming the problem: empty, not an address, or (with ``check_mx``) a
    domain that accepts no mail. A DNS server that does not answer in time rejects nothing.
    """
    text = str(raw or "").strip()
    if not text:
        raise RejectedAddress("no email address")
    try:
        checked = validate_email(text, check_deliverability=check_mx,
                                 dns_resolver=(dns_resolver or mx_resolver()) if check_mx else None)
    except EmailNotValidError as exc:
        raise RejectedAddress(f"invalid email {text!r}: {exc}") from None
    email = checked.normalized.lower()
    local, _, domain = email.rpartition("@")
    return NormalizedAddress(
        email=email,
        domain=domain,
        is_role_account=local.split("+", 1)[0] in ROLE_LOCAL_PARTS,
        is_free_mail=domain in FREE_MAIL_DOMAINS,
    )
