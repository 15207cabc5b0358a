"""The DNS lookups of the domain checks, against ``AICMO_CAM_DNS_NAMESERVERS`` (the system's when empty).

A lookup that finds nothing (no such name, no record of that type) answers an empty list; one that
gets no answer at all (a timeout, a failing server) raises ``LookupFailed``, which the checks turn
into a warning rather than a failure: a slow DNS server must never hold a mailbox's leads.
"""

from __future__ import annotations

import time

import dns.exception
import dns.resolver
from django.conf import settings


class LookupFailed(Exception):
    """DNS did not answer; the message says which name and why."""


class Resolver:
    """Asks each (name, type) once per check run, within ``timeout`` seconds per lookup and, with a
    ``budget``, within that many seconds for all of them together (a lookup past it fails at once)."""

    def __init__(self, *, timeout: float | None = None, budget: float | None = None) -> None:
        self.timeout = float(timeout or settings.AICMO_CAM_DNS_TIMEOUT_SECONDS)
        self.deadline = time.monotonic() + budget if budget is not None else None
        if settings.AICMO_CAM_DNS_NAMESERVERS:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host for host, _ in settings.AICMO_CAM_DNS_NAMESERVERS]
            self._resolver.nameserver_ports = dict(settings.AICMO_CAM_DNS_NAMESERVERS)
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = self.timeout
        self._resolver.timeout = self.timeout
        self._answers: dict[tuple[str, str], list[str]] = {}

    def lookup(self, name: str, rdtype: str) -> list[str]:
        """The records of ``rdtype`` at ``name`` as text (TXT strings joined), [] when there are none."""
        key = (name.rstrip(".").lower(), rdtype)
        if key not in self._answers:
            self._answers[key] = self._ask(*key)
        return self._answers[key]

    def _ask(self, name: str, rdtype: str) -> list[str]:
        lifetime = self.timeout
        if self.deadline is not None:
            lifetime = min(lifetime, self.deadline - time.monotonic())
            if lifetime <= 0:
                raise LookupFailed(f"The check ran out of time before asking DNS for {rdtype} {name}")
        try:
            answer = self._resolver.resolve(name, rdtype, lifetime=lifetime)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise LookupFailed(f"DNS did not answer for {rdtype} {name} within {lifetime:g} s") from None
        except (dns.resolver.NoNameservers, dns.resolver.YXDOMAIN, dns.exception.DNSException) as exc:
            raise LookupFailed(f"DNS could not look up {rdtype} {name}: {exc}") from None
        if rdtype == "TXT":
            return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
        if rdtype == "MX":
            return [rdata.exchange.to_text().rstrip(".") for rdata in answer]
        return [rdata.to_text() for rdata in answer]
