"""Email addresses and domains: the one spelling CAM stores and compares, or a reason to refuse one.

``normalize_address`` is the one spelling of an address CAM stores and compares: trimmed, the domain
in Unicode (an internationalised domain given in punycode, ``xn--…``, is decoded), the whole address
in lower case. Leads (harvest, import, API), the suppression list and reply matching all go through
it, and ``address_key`` / ``domain_key`` give that spelling for comparing, so
``ÜSER@xn--exmple-cua.com`` and ``üser@exämple.com`` are the same address everywhere. It imports
nothing else of CAM, so each of them (the models' validation too) can use it without depending on another.

A domain covers the domains under it: ``domain_and_parents`` gives the domains a suppression of which
stops an address (``example.com`` stops ``mail.example.com``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.resolver
import email_validator
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email as django_validate_email
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


# For addresses never to be mailed: whatever a lead could hold is accepted (see ``normalize_address``).
RESERVED_OK: dict[str, Any] = {"test_environment": True, "globally_deliverable": False, "allow_quoted_local": True,
                               "allow_domain_literal": True}


# The plain addresses most lists are made of: ASCII letters, digits and ``._+-`` before the @-sign, a
# dotted domain of letters, digits and inner hyphens with a letters-only top-level domain. For these the
# validator's answer is known without asking it: valid, spelled as given in lower case (its Unicode and
# IDNA steps change nothing in plain ASCII). Anything else — quotes, other characters, punycode,
# ``--`` anywhere in the domain (reserved label forms), special-use domains, lengths near a limit, MX
# checks — goes to the validator. tests/test_addresses.py holds the two to the same answers on
# generated addresses, so this is an optimisation and never a second opinion: it takes a million-row
# import from validating in ~40 µs an address to ~1 µs.
_PLAIN_LOCAL = r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*"
_PLAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_DOMAIN_TEXT = rf"(?:{_PLAIN_LABEL}\.)+[a-z]{{2,63}}"
_PLAIN_DOMAIN = re.compile(_PLAIN_DOMAIN_TEXT, re.ASCII)
_PLAIN_ADDRESS = re.compile(rf"({_PLAIN_LOCAL})@({_PLAIN_DOMAIN_TEXT})", re.ASCII)


# The validator's special-use names (``.test``, ``.local``, …) are all top-level labels (a test holds it).
_SPECIAL_USE_TLDS = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)


@functools.lru_cache(maxsize=4096)  # a lead's website is mostly at its address's domain
def plain_domain(domain: str) -> bool:
    """Whether ``domain`` (in lower case) is one whose validation is known: see ``_PLAIN_ADDRESS``."""
    return _plain_domain_limits(domain) and _PLAIN_DOMAIN.fullmatch(domain) is not None


def _plain_domain_limits(domain: str) -> bool:
    """``plain_domain`` but for the pattern, for a domain already matched by it."""
    return len(domain) <= 180 and "--" not in domain and domain.rpartition(".")[2] not in _SPECIAL_USE_TLDS


def _plain(text: str) -> tuple[str, str] | None:
    """``(local, domain)`` in lower case when ``text`` is a plain address (see ``_PLAIN_ADDRESS``)."""
    lowered = text.lower()
    match = _PLAIN_ADDRESS.fullmatch(lowered)
    # The address's pattern holds the domain's (``_PLAIN_DOMAIN``), so only its limits are left to check.
    if match is None or len(match[1]) > 64 or not _plain_domain_limits(match[2]):
        return None
    return match[1], match[2]


def normalize_plain_addresses(texts: Sequence[str]) -> list[NormalizedAddress | None]:
    """``normalize_address`` of each of ``texts`` that is a plain address (``_PLAIN_ADDRESS``), ``None`` for
    every other: a batch's addresses in one call, for the intake (``cam.pipeline.row_cleaning``)."""
    fullmatch, special, roles, free = _PLAIN_ADDRESS.fullmatch, _SPECIAL_USE_TLDS, ROLE_LOCAL_PARTS, FREE_MAIL_DOMAINS
    normalized: list[NormalizedAddress | None] = []
    for text in texts:
        email = text.strip().lower()
        match = fullmatch(email)
        # As ``_plain`` and ``_normalized``: the pattern matched the whole, so the address is ``email``.
        if (match is None or len(local := match[1]) > 64 or len(domain := match[2]) > 180 or "--" in domain
                or domain.rpartition(".")[2] in special):
            normalized.append(None)
        else:
            normalized.append(NormalizedAddress(email, domain, local.split("+", 1)[0] in roles, domain in free))
    return normalized


def normalize_address(raw: object, *, check_mx: bool = False, dns_resolver: dns.resolver.Resolver | None = None,
                      allow_reserved: bool = False) -> NormalizedAddress:
    """Validate and normalise one address (syntax only unless ``check_mx``).

    Raises ``RejectedAddress`` naming the problem: empty, not an address, or (with ``check_mx``) a
    domain that accepts no mail. A DNS server that does not answer in time rejects nothing.

    ``allow_reserved`` is for addresses CAM must never mail (the suppression list), which must accept
    any address a lead may hold: reserved and special-use domains (``.test``, ``.local``, …), quoted
    local parts, address literals and anything else Django's own address validator accepts, spelled
    the same way. It never looks anything up in DNS.
    """
    text = str(raw or "").strip()
    if not text:
        raise RejectedAddress("no email address")
    plain = None if check_mx else _plain(text)
    if plain is not None:
        return _normalized(f"{plain[0]}@{plain[1]}")
    try:
        if allow_reserved:
            checked = validate_email(text, check_deliverability=False, **RESERVED_OK)
        else:
            checked = validate_email(text, check_deliverability=check_mx,
                                     dns_resolver=(dns_resolver or mx_resolver()) if check_mx else None)
        email = checked.normalized.lower()
    except EmailNotValidError as exc:
        accepted = _django_accepted(text) if allow_reserved else None
        if accepted is None:
            raise RejectedAddress(f"invalid email {text!r}: {exc}") from None
        email = accepted
    return _normalized(email)


def _normalized(email: str) -> NormalizedAddress:
    local, _, domain = email.rpartition("@")
    return NormalizedAddress(
        email=email,
        domain=domain,
        is_role_account=local.split("+", 1)[0] in ROLE_LOCAL_PARTS,
        is_free_mail=domain in FREE_MAIL_DOMAINS,
    )


def _django_accepted(text: str) -> str | None:
    """``text`` in lower case, if Django's address validator (the one the admin uses) accepts it."""
    try:
        django_validate_email(text)
    except ValidationError:
        return None
    return text.lower()


@functools.lru_cache(maxsize=8192)
def domain_spellings(raw: str) -> tuple[str, ...]:
    """A domain's spellings, in lower case: Unicode first, then punycode (``xn--…``), then as given.
    Only the spelling as given when it is no valid domain name."""
    text = str(raw or "").strip().lower()
    if plain_domain(text):
        return (text,)
    try:
        checked = validate_email(f"postmaster@{text}", check_deliverability=False, **RESERVED_OK)
    except EmailNotValidError:
        return (text,)
    return tuple(dict.fromkeys((checked.domain.lower(), checked.ascii_domain.lower(), text)))


@functools.lru_cache(maxsize=8192)
def address_key(raw: str) -> str:
    """The spelling of ``raw`` that CAM stores and compares, as ``normalize_address`` gives it (reserved
    domains allowed). Never raises: text that is no address comes back trimmed and in lower case."""
    plain = _plain(str(raw or "").strip())
    if plain is not None:
        return f"{plain[0]}@{plain[1]}"
    try:
        return normalize_address(raw, allow_reserved=True).email
    except RejectedAddress:
        return str(raw or "").strip().lower()


@functools.lru_cache(maxsize=8192)
def address_spellings(raw: str) -> tuple[str, ...]:
    """Every spelling under which ``raw`` may have been stored: ``address_key`` first, then with the
    domain in punycode, then as given (lower case)."""
    plain = _plain(str(raw or "").strip())
    if plain is not None:  # its one spelling, however it is given
        return (f"{plain[0]}@{plain[1]}",)
    key = address_key(raw)
    local, at, domain = key.rpartition("@")
    spelled = [key]
    if at:
        spelled += [f"{local}@{spelling}" for spelling in domain_spellings(domain)]
    spelled.append(str(raw or "").strip().lower())
    return tuple(dict.fromkeys(spelled))


@functools.lru_cache(maxsize=8192)
def domain_and_parents(domain: str) -> tuple[str, ...]:
    """``domain`` and every domain above it that still has a dot, nearest first:
    ``a.mail.example.com`` → ``a.mail.example.com``, ``mail.example.com``, ``example.com``. An address
    literal (``[192.0.2.1]``) has no parents."""
    domain = domain.strip().rstrip(".")
    if not domain or domain.startswith("["):
        return (domain,) if domain else ()
    labels = domain.split(".")
    return tuple(".".join(labels[start:]) for start in range(max(len(labels) - 1, 1)))


def search_spellings(term: str) -> tuple[str, ...]:
    """A search term and, when it is a whole address or domain, its other spellings (Unicode and
    punycode), so a search finds a row whichever spelling it was typed in."""
    text = term.strip().lower()
    if "@" in text:
        return address_spellings(text)
    if "." in text and not any(char.isspace() for char in text):
        return domain_spellings(text)
    return (text,)


def normalize_domain(raw: object) -> str:
    """A domain as ``normalize_address`` spells the domain of an address (reserved domains allowed):
    trimmed, a leading ``@`` dropped, in Unicode and lower case. Raises ``RejectedAddress``."""
    text = str(raw or "").strip().removeprefix("@").strip()
    if not text:
        raise RejectedAddress("no domain")
    if "@" in text or "." not in text.strip(".") or text.startswith("[") or any(char.isspace() for char in text):
        raise RejectedAddress(f"invalid domain {text!r}: enter a domain such as example.com.")
    try:
        return normalize_address(f"postmaster@{text}", allow_reserved=True).domain
    except RejectedAddress as exc:
        reason = str(exc).partition(": ")[2] or "enter a domain such as example.com."
        raise RejectedAddress(f"invalid domain {text!r}: {reason}") from None


@functools.lru_cache(maxsize=8192)
def domain_key(raw: str) -> str:
    """The spelling of a domain that CAM stores and compares (see ``normalize_domain``); never raises."""
    text = str(raw or "").strip().lower()
    if plain_domain(text):
        return text
    try:
        return normalize_domain(raw)
    except RejectedAddress:
        return str(raw or "").strip().lower()
