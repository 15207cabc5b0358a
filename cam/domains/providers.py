"""Which SPF include and DKIM selectors a mailbox's provider needs, guessed from how it sends."""

from __future__ import annotations

from dataclasses import dataclass

from cam.models import Mailbox


@dataclass(frozen=True)
class ProviderProfile:
    name: str  # microsoft365, google, resend or generic
    label: str
    spf_include: str  # the include: the domain's SPF must reach; "" when unknown
    spf_subdomain: str  # where that SPF lives, below the domain ("send" for Resend), "" for the domain itself
    dkim_selectors: tuple[str, ...]

    def spf_name(self, domain: str) -> str:
        return f"{self.spf_subdomain}.{domain}" if self.spf_subdomain else domain


MICROSOFT365 = ProviderProfile("microsoft365", "Microsoft 365", "spf.protection.outlook.com", "",
                               ("selector1", "selector2"))
GOOGLE = ProviderProfile("google", "Google Workspace", "_spf.google.com", "", ("google",))
RESEND = ProviderProfile("resend", "Resend", "amazonses.com", "send", ("resend",))
GENERIC = ProviderProfile("generic", "your mail provider", "", "", ())

# Parts of an SMTP host name that give its provider away.
_HOST_HINTS = (
    ("office365.com", MICROSOFT365), ("outlook.com", MICROSOFT365), ("microsoft.com", MICROSOFT365),
    ("gmail.com", GOOGLE), ("google.com", GOOGLE), ("googlemail.com", GOOGLE),
)


def provider_profile(mailbox: Mailbox) -> ProviderProfile:
    if mailbox.provider == Mailbox.Provider.RESEND:
        return RESEND
    host = mailbox.smtp_host.lower().rstrip(".")
    for hint, profile in _HOST_HINTS:
        if host == hint or host.endswith("." + hint):
            return profile
    return GENERIC
