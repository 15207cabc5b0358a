"""Zones on the suite's DNS server for each kind of sending domain, and mailboxes sending from them."""

import pytest

from tests.factories import MailboxFactory
from tests.servers.dns import ZoneServer

SPF_M365 = '"v=spf1 include:spf.protection.outlook.com -all"'
DKIM_KEY = '"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"'
DMARC_REJECT = '"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"'


def zone(domain: str, *, spf: str | None = SPF_M365, dkim: bool = True,
         dmarc: str | None = DMARC_REJECT) -> dict[str, list[tuple[str, str]]]:
    """A Microsoft 365 domain set up right, less what the arguments leave out."""
    records: dict[str, list[tuple[str, str]]] = {domain: [("MX", f"0 {domain.replace('.', '-')}.mail.protection."
                                                                   "outlook.com.")]}
    if spf:
        records[domain].append(("TXT", spf))
    if dkim:
        # Microsoft 365 publishes its DKIM keys behind a CNAME in the tenant's own zone.
        records[f"selector1._domainkey.{domain}"] = [("CNAME", f"selector1-{domain.replace('.', '-')}._domainkey."
                                                               "tenant.onmicrosoft.com.")]
        records[f"selector1-{domain.replace('.', '-')}._domainkey.tenant.onmicrosoft.com"] = [("TXT", DKIM_KEY)]
    if dmarc:
        records[f"_dmarc.{domain}"] = [("TXT", dmarc.format(domain=domain))]
    return records


def eleven_lookups() -> str:
    # Over 255 characters: a TXT record of several strings, which receivers join.
    first = " ".join(f"include:l{n}.lookups.example" for n in range(1, 6))
    second = " ".join(f"include:l{n}.lookups.example" for n in range(6, 11))
    return f'"v=spf1 {first} " "{second} include:spf.protection.outlook.com -all"'


ZONES: dict[str, list[tuple[str, str]]] = {
    "spf.protection.outlook.com": [("TXT", '"v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 -all"')],
    "cam.pass.example": [("A", "192.0.2.10")],
    **{f"l{n}.lookups.example": [("TXT", f'"v=spf1 ip4:198.51.100.{n} -all"')] for n in range(1, 11)},
    **zone("pass.example"),
    **zone("nospf.example", spf=None),
    **zone("eleven.example", spf=eleven_lookups()),
    **zone("nodmarc.example", dmarc=None),
    **zone("pnone.example", dmarc='"v=DMARC1; p=none"'),
    **zone("nodkim.example", dkim=False),
    **zone("otherinclude.example", spf='"v=spf1 include:_spf.google.com -all"'),
    "_spf.google.com": [("TXT", '"v=spf1 ip4:35.190.247.0/24 ~all"')],
    # Resend sends through Amazon SES from the send. subdomain, which carries the SPF record.
    "resend.example": [("MX", "10 inbound.resend.example."), ("TXT", '"google-site-verification=abc"')],
    "send.resend.example": [("MX", "10 feedback-smtp.eu-west-1.amazonses.com."),
                            ("TXT", '"v=spf1 include:amazonses.com ~all"')],
    "amazonses.com": [("TXT", '"v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all"')],
    "resend._domainkey.resend.example": [("TXT", DKIM_KEY)],
    "_dmarc.resend.example": [("TXT", '"v=DMARC1; p=quarantine"')],
}


@pytest.fixture
def zones(settings):
    server = ZoneServer(ZONES, silent={"slow.example"}).start()
    settings.AICMO_CAM_DNS_NAMESERVERS = [(server.host, server.port)]
    settings.AICMO_CAM_DNS_TIMEOUT_SECONDS = 1
    settings.AICMO_CAM_PUBLIC_URL = "https://cam.pass.example"
    yield server
    server.stop()


def m365_mailbox(domain: str, **fields):
    return MailboxFactory(from_email=f"alex@{domain}", provider="smtp", smtp_host="smtp.office365.com", **fields)
