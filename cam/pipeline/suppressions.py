"""Which addresses must never be mailed: the suppression list, by address and by whole domain.

Addresses and domains are compared in the one spelling ``cam.pipeline.normalize`` gives them (the
domain in Unicode, lower case), on both sides: a lead at ``exämple.com`` is suppressed by a row for
``xn--exmple-cua.com`` and the other way round, whichever spelling either was stored in.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from cam.models import Suppression
from cam.pipeline.normalize import address_key, address_spellings, domain_key, domain_spellings


def suppressed_addresses(emails: Iterable[str]) -> dict[str, str]:
    """The given addresses that are suppressed, each (as given) with the reason for staff. One query."""
    emails = list(dict.fromkeys(emails))
    if not emails:
        return {}
    keys = {email: address_key(email) for email in emails}
    domains = {email: domain_key(key.rpartition("@")[2]) for email, key in keys.items()}
    spelled_emails = {spelling for email in emails for spelling in address_spellings(email)}
    spelled_domains = {spelling for domain in set(domains.values()) for spelling in domain_spellings(domain)}
    blocked_emails, blocked_domains = set(), set()
    for email, domain in Suppression.objects.filter(
            Q(email__in=spelled_emails) | Q(domain__in=spelled_domains)).values_list("email", "domain"):
        if email:
            blocked_emails.add(address_key(email))
        else:
            blocked_domains.add(domain_key(domain))
    found = {}
    for email in emails:
        if keys[email] in blocked_emails:
            found[email] = f"{keys[email]} is on the suppression list"
        elif domains[email] in blocked_domains:
            found[email] = f"the domain {domains[email]} is on the suppression list"
    return found
