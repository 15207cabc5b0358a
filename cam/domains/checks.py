"""The checks of one sending domain, each a verdict (pass / warn / fail) and, unless it passes, what to fix.

Only SPF and DMARC failing holds a domain's mail (``holds_mail``): without them Gmail and Microsoft
reject bulk mail outright. A missing MX or DKIM record, a lax DMARC policy or an unreachable tracking
host warn or fail on the page without holding anything. DNS not answering only ever warns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from cam.domains.dns import LookupFailed, Resolver
from cam.domains.providers import ProviderProfile

PASS, WARN, FAIL = "pass", "warn", "fail"
ORDER = {PASS: 0, WARN: 1, FAIL: 2}
# RFC 7208 §4.6.4: evaluating an SPF record may cause at most 10 DNS lookups.
SPF_LOOKUP_LIMIT = 10
# Mechanisms and modifiers that cost a lookup each.
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
_KNOWN_TERMS = frozenset(("all", "ip4", "ip6", "include", "a", "mx", "ptr", "exists", "redirect", "exp"))
# Checks whose failure holds the domain's mail.
HOLDING_CHECKS = ("spf", "dmarc")


@dataclass(frozen=True)
class Check:
    name: str  # mx, spf, dkim, dmarc, tracking
    verdict: str
    summary: str  # what was found
    fix: str = ""  # what to do about it, in words; "" when it passes

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=ORDER.__getitem__, default=PASS)


def holds_mail(checks: Iterable[Check]) -> bool:
    return any(check.name in HOLDING_CHECKS and check.verdict == FAIL for check in checks)


def _lookup_failed(name: str, exc: LookupFailed) -> Check:
    return Check(name, WARN, f"{exc}.", "Nothing is held for this; the check runs again tomorrow, or press Check now.")


def check_mx(domain: str, dns: Resolver) -> Check:
    try:
        hosts = dns.lookup(domain, "MX")
    except LookupFailed as exc:
        return _lookup_failed("mx", exc)
    if not hosts:
        return Check("mx", FAIL, f"{domain} has no MX record: replies and bounces cannot reach it.",
                     f"Add the MX records your mail provider gives you for {domain}.")
    return Check("mx", PASS, f"Mail for {domain} goes to {', '.join(sorted(hosts))}.")


def spf_record(name: str, dns: Resolver) -> list[str]:
    return [txt for txt in dns.lookup(name, "TXT") if txt.lower().split(" ", 1)[0] == "v=spf1"]


class _SpfProblem(Exception):
    pass


@dataclass
class _SpfWalk:
    lookups: int = 0
    includes: set[str] = field(default_factory=set)  # every include: and redirect= reached, lower case
    all_qualifier: str = ""  # of the top record's all: "+", "-", "~", "?"; "" without one


def _walk_spf(name: str, dns: Resolver, walk: _SpfWalk, *, depth: int = 0, top: bool = True) -> None:
    """Count the lookups of the SPF record at ``name`` and of every record it includes or redirects to."""
    if depth > SPF_LOOKUP_LIMIT:
        raise _SpfProblem(f"the SPF record of {name} includes itself in a loop")
    records = spf_record(name, dns)
    if not records:
        raise _SpfProblem(f"the included {name} has no SPF record")
    if len(records) > 1:
        raise _SpfProblem(f"the included {name} has {len(records)} SPF records; it must have exactly one")
    redirect = ""
    for term in records[0].split()[1:]:
        qualifier = term[0] if term[0] in "+-~?" else ""
        body = term[len(qualifier):]
        if "=" in body.split(":", 1)[0]:  # a modifier: redirect=…, exp=…
            key, _, value = body.partition("=")
        else:  # a mechanism: include:…, a, a:host/24, mx/24, ip4:…, all
            key, _, value = body.partition(":")
        key = key.split("/")[0].lower()
        if key not in _KNOWN_TERMS:
            raise _SpfProblem(f"the SPF record of {name} has a term SPF does not know: {term!r}")
        if key in _LOOKUP_TERMS:
            walk.lookups += 1
        if key == "include":
            walk.includes.add(value.lower())
            _walk_spf(value, dns, walk, depth=depth + 1, top=False)
        elif key == "redirect":
            redirect = value
        elif key == "all" and top:
            walk.all_qualifier = qualifier or "+"
    if redirect:
        walk.includes.add(redirect.lower())
        _walk_spf(redirect, dns, walk, depth=depth + 1, top=top)


def check_spf(domain: str, profiles: Iterable[ProviderProfile], dns: Resolver) -> Check:
    profiles = list(profiles)
    names = sorted({profile.spf_name(domain) for profile in profiles} or {domain})
    problems: list[tuple[str, str]] = []  # (what is wrong, what to do)
    warnings: list[tuple[str, str]] = []
    found: list[str] = []
    try:
        for name in names:
            records = spf_record(name, dns)
            needs = sorted({p.spf_include for p in profiles if p.spf_include and p.spf_name(domain) == name})
            example = " ".join(["v=spf1"] + [f"include:{include}" for include in needs] + ["~all"])
            if not records:
                problems.append((f"there is no SPF record at {name}",
                                 f"add a TXT record at {name}: `{example}`"))
                continue
            if len(records) > 1:
                problems.append((f"there are {len(records)} SPF records at {name}, so receivers treat SPF as broken",
                                 f"merge them into one TXT record at {name}"))
                continue
            walk = _SpfWalk()
            try:
                _walk_spf(name, dns, walk)
            except _SpfProblem as exc:
                problems.append((str(exc), f"correct the SPF record at {name}"))
                continue
            if walk.lookups > SPF_LOOKUP_LIMIT:
                problems.append((f"the SPF record of {name} needs {walk.lookups} DNS lookups, more than the "
                                 f"{SPF_LOOKUP_LIMIT} SPF allows, so receivers treat it as broken",
                                 "remove includes you no longer send through, or replace some with their "
                                 "ip4:/ip6: ranges"))
                continue
            missing = [include for include in needs if include not in walk.includes]
            for include in missing:
                problems.append((f"the SPF record of {name} does not cover {include}",
                                 f"add `include:{include}` to your SPF record"))
            if walk.all_qualifier == "+":
                problems.append((f"the SPF record of {name} ends in `+all`, which lets anyone send as you",
                                 "end it with `~all` or `-all`"))
            elif not walk.all_qualifier:
                warnings.append((f"the SPF record of {name} has no `all` at the end",
                                 "end it with `~all` or `-all`"))
            if not missing:
                found.append(f"{name}: {records[0]} ({walk.lookups} of {SPF_LOOKUP_LIMIT} DNS lookups)")
    except LookupFailed as exc:
        return _lookup_failed("spf", exc)
    if not any(p.spf_include for p in profiles):
        warnings.append(("CAM cannot tell which provider sends this domain's mail, so it did not check that SPF "
                         "covers it", "make sure your SPF record includes your provider's servers"))
    if problems:
        return Check("spf", FAIL, _sentence(problems), _sentence(problems, fix=True))
    if warnings:
        return Check("spf", WARN, _sentence([*warnings, ("; ".join(found), "")]), _sentence(warnings, fix=True))
    return Check("spf", PASS, "; ".join(found) + ".")


def _sentence(items: list[tuple[str, str]], *, fix: bool = False) -> str:
    parts = [(what_to_do if fix else what) for what, what_to_do in items]
    text = "; ".join(part for part in parts if part)
    return text[:1].upper() + text[1:] + "." if text else ""


def check_dkim(domain: str, profiles: Iterable[ProviderProfile], selectors: Iterable[str], dns: Resolver) -> Check:
    selectors = list(selectors) or sorted({s for p in profiles for s in p.dkim_selectors})
    if not selectors:
        return Check("dkim", WARN, "CAM does not know which DKIM selector your provider signs with.",
                     "Enter your provider's DKIM selectors on this sending domain.")
    found: list[str] = []
    revoked: list[str] = []
    try:
        for selector in selectors:
            name = f"{selector}._domainkey.{domain}"
            records = [txt for txt in dns.lookup(name, "TXT") if "p=" in txt.replace(" ", "")]
            if not records:
                continue
            key = next((tag.split("=", 1)[1] for tag in records[0].replace(" ", "").split(";")
                        if tag.startswith("p=")), "")
            (found if key else revoked).append(selector)
    except LookupFailed as exc:
        return _lookup_failed("dkim", exc)
    if found:
        return Check("dkim", PASS, f"DKIM keys found for selector {', '.join(found)}.")
    where = " or ".join(f"{selector}._domainkey.{domain}" for selector in selectors)
    if revoked:
        return Check("dkim", WARN, f"The DKIM key at {where} is empty (revoked).",
                     "Publish the current DKIM key your provider gives you.")
    return Check("dkim", WARN, f"No DKIM key at {where}.",
                 "Turn on DKIM signing at your provider and publish the record it gives you"
                 " (or enter the selectors it uses on this sending domain).")


def dmarc_tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            tags[key.strip().lower()] = value.strip()
    return tags


def check_dmarc(domain: str, *, dkim: Check, spf: Check, dns: Resolver) -> Check:
    name = f"_dmarc.{domain}"
    try:
        records = [txt for txt in dns.lookup(name, "TXT") if txt.replace(" ", "").lower().startswith("v=dmarc1")]
    except LookupFailed as exc:
        return _lookup_failed("dmarc", exc)
    example = f"`v=DMARC1; p=none; rua=mailto:dmarc@{domain}`"
    if not records:
        return Check("dmarc", FAIL, f"{domain} has no DMARC record, which Gmail and Microsoft require of bulk "
                                    "senders.", f"Add a TXT record at {name}: {example}.")
    if len(records) > 1:
        return Check("dmarc", FAIL, f"{name} has {len(records)} DMARC records, so receivers ignore them all.",
                     "Keep exactly one DMARC record.")
    tags = dmarc_tags(records[0])
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Check("dmarc", FAIL, f"The DMARC record at {name} has no valid policy (p=).",
                     f"Give it a policy, for example {example}.")
    if dkim.verdict != PASS and spf.verdict != PASS:
        return Check("dmarc", WARN, f"DMARC policy p={policy}, but neither DKIM nor SPF passes for {domain}, so "
                                    "no email can align with it.", "Fix DKIM or SPF above so DMARC can pass.")
    if policy == "none":
        return Check("dmarc", WARN, f"DMARC policy p=none: receivers only report, and anyone can still send "
                                    f"as {domain}.", "Once the reports show only your own mail, move to "
                                                     "`p=quarantine`, then `p=reject`.")
    return Check("dmarc", PASS, f"DMARC policy p={policy}.")


def check_tracking(dns: Resolver) -> Check:
    url = settings.AICMO_CAM_PUBLIC_URL
    host = (urlsplit(url).hostname or "").lower()
    fix = "Set AICMO_CAM_PUBLIC_URL to the public https address CAM answers on."
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        verdict = WARN if address.is_global else FAIL
        return Check("tracking", verdict, f"Unsubscribe links point at the address {host}, not a name"
                     + ("" if address.is_global else " recipients can reach") + ".", fix)
    if host == "localhost" or host.endswith(".localhost"):
        return Check("tracking", FAIL, f"Unsubscribe links point at {host}, which recipients cannot reach.", fix)
    try:
        addresses = dns.lookup(host, "A") + dns.lookup(host, "AAAA")
    except LookupFailed as exc:
        return _lookup_failed("tracking", exc)
    if not addresses:
        return Check("tracking", FAIL, f"The unsubscribe host {host} does not resolve: recipients' links go "
                                       "nowhere.", f"Point {host} at this server in DNS, or correct "
                                                   "AICMO_CAM_PUBLIC_URL.")
    return Check("tracking", PASS, f"The unsubscribe host {host} resolves to {', '.join(sorted(addresses))}.")


def domain_checks(domain: str, *, profiles: Iterable[ProviderProfile], selectors: Iterable[str],
                  dns: Resolver) -> list[Check]:
    """Every check of ``domain``, in the order the page shows them."""
    profiles = list(profiles)
    mx = check_mx(domain, dns)
    spf = check_spf(domain, profiles, dns)
    dkim = check_dkim(domain, profiles, selectors, dns)
    dmarc = check_dmarc(domain, dkim=dkim, spf=spf, dns=dns)
    return [mx, spf, dkim, dmarc, check_tracking(dns)]
