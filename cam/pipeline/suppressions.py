"""Which addresses must never be mailed: the suppression list, by address and by whole domain."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from cam.models import Suppression


def suppressed_addresses(emails: Iterable[str]) -> dict[str, str]:
    """The given (normalised) addresses that are suppressed, each with the reason for staff. One query."""
    emails = list(emails)
    if not emails:
        return {}
    domains = {email.rpartition("@")[2] for email in emails}
    blocked_emails, blocked_domains = set(), set()
    for email, domain in Suppression.objects.filter(Q(email__in=emails) | Q(domain__in=domains)).values_list(
            "email", "domain"):
        if email:
            blocked_emails.add(email)
        else:
            blocked_domains.add(domain)
    found = {}
    for email in emails:
        domain = email.rpartition("@")[2]
        if email in blocked_emails:
            found[email] = f"{email} is on the suppression list"
        elif domain in blocked_domains:
            found[email] = f"the domain {domain} is on the suppression list"
    return found
