"""Each verdict of each check, against zones on a real DNS server on loopback, and the words of what to fix."""

import pytest

from cam.domains.providers import provider_profile
from cam.domains.services import domain_check, mailbox_domain_check_on_commit
from cam.models import SendingDomain
from tests.domains.conftest import m365_mailbox
from tests.factories import MailboxFactory

pytestmark = pytest.mark.django_db


def checked(domain: str) -> tuple[SendingDomain, dict[str, dict]]:
    m365_mailbox(domain)
    row = domain_check(domain)
    return row, {check["name"]: check for check in row.checks}


def verdicts(checks: dict[str, dict]) -> dict[str, str]:
    return {name: check["verdict"] for name, check in checks.items()}


def test_a_domain_set_up_right_passes_every_check(zones):
    row, checks = checked("pass.example")
    assert verdicts(checks) == {"mx": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass", "tracking": "pass"}
    assert (row.verdict, row.holds_mail, row.holds_leads) == ("pass", False, False)
    assert "(1 of 10 DNS lookups)" in checks["spf"]["summary"]
    assert checks["dkim"]["summary"] == "DKIM keys found for selector selector1."
    assert all(check["fix"] == "" for check in checks.values())
    assert row.checked_at is not None


def test_a_resend_domain_is_checked_on_its_send_subdomain_with_resends_selector(zones):
    MailboxFactory(from_email="alex@resend.example", provider="resend")
    row = domain_check("resend.example")
    checks = {check["name"]: check for check in row.checks}
    assert verdicts(checks) == {"mx": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass", "tracking": "pass"}
    assert checks["spf"]["summary"].startswith("send.resend.example: v=spf1 include:amazonses.com ~all")
    assert checks["dkim"]["summary"] == "DKIM keys found for selector resend."


def test_a_missing_spf_record_fails_and_says_which_record_to_add(zones):
    row, checks = checked("nospf.example")
    assert checks["spf"]["verdict"] == "fail"
    assert checks["spf"]["summary"] == "There is no SPF record at nospf.example."
    assert checks["spf"]["fix"] == ("Add a TXT record at nospf.example: "
                                    "`v=spf1 include:spf.protection.outlook.com ~all`.")
    assert (row.verdict, row.holds_mail) == ("fail", True)


def test_an_spf_record_needing_11_lookups_fails(zones):
    row, checks = checked("eleven.example")
    assert checks["spf"]["verdict"] == "fail"
    assert "needs 11 DNS lookups, more than the 10 SPF allows" in checks["spf"]["summary"]
    assert "ip4:/ip6: ranges" in checks["spf"]["fix"]
    assert row.holds_mail


def test_an_spf_record_not_covering_the_mailboxs_provider_fails_with_the_include_to_add(zones):
    row, checks = checked("otherinclude.example")
    assert checks["spf"]["verdict"] == "fail"
    assert checks["spf"]["fix"] == "Add `include:spf.protection.outlook.com` to your SPF record."
    assert row.holds_mail


def test_a_missing_dmarc_record_fails_and_holds(zones):
    row, checks = checked("nodmarc.example")
    assert checks["dmarc"]["verdict"] == "fail"
    assert checks["dmarc"]["fix"] == ("Add a TXT record at _dmarc.nodmarc.example: "
                                      "`v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.example`.")
    assert (row.verdict, row.holds_mail) == ("fail", True)


def test_a_dmarc_policy_of_none_warns_without_holding(zones):
    row, checks = checked("pnone.example")
    assert checks["dmarc"]["verdict"] == "warn"
    assert "p=none" in checks["dmarc"]["summary"]
    assert "`p=quarantine`" in checks["dmarc"]["fix"]
    assert (row.verdict, row.holds_mail) == ("warn", False)


def test_a_missing_dkim_key_warns_without_holding(zones):
    row, checks = checked("nodkim.example")
    assert checks["dkim"]["verdict"] == "warn"
    assert checks["dkim"]["summary"] == ("No DKIM key at selector1._domainkey.nodkim.example or "
                                         "selector2._domainkey.nodkim.example.")
    assert (row.verdict, row.holds_mail) == ("warn", False)


def test_staff_entered_selectors_replace_the_providers(zones):
    m365_mailbox("nodkim.example")
    SendingDomain.objects.create(domain="nodkim.example", dkim_selectors="s2024, s2025")
    row = domain_check("nodkim.example")
    dkim = next(check for check in row.checks if check["name"] == "dkim")
    assert "s2024._domainkey.nodkim.example or s2025._domainkey.nodkim.example" in dkim["summary"]


def test_dns_not_answering_only_warns_and_never_holds(zones):
    row, checks = checked("slow.example")
    assert {checks[name]["verdict"] for name in ("mx", "spf", "dkim", "dmarc")} == {"warn"}
    assert "did not answer for MX slow.example within 1 s" in checks["mx"]["summary"]
    assert (row.verdict, row.holds_mail) == ("warn", False)


@pytest.mark.parametrize(("url", "verdict", "words"), [
    ("https://cam.nowhere.example", "fail", "The unsubscribe host cam.nowhere.example does not resolve"),
    ("http://127.0.0.1:8000", "fail", "not a name recipients can reach"),
    ("http://localhost:8000", "fail", "recipients cannot reach"),
])
def test_an_unsubscribe_host_recipients_cannot_reach_fails_without_holding(zones, settings, url, verdict, words):
    settings.AICMO_CAM_PUBLIC_URL = url
    row, checks = checked("pass.example")
    assert checks["tracking"]["verdict"] == verdict and words in checks["tracking"]["summary"]
    assert not row.holds_mail


def test_a_check_out_of_time_asks_nothing_more_and_only_warns(zones):
    m365_mailbox("nospf.example")
    row = domain_check("nospf.example", budget=0)
    assert {check["verdict"] for check in row.checks if check["name"] != "tracking"} == {"warn"}
    assert "ran out of time" in row.checks[0]["summary"]
    assert not row.holds_mail
    assert not any("nospf.example" in query for query in zones.queries)


def test_saving_a_mailbox_checks_its_domain_once_the_save_commits(zones, django_capture_on_commit_callbacks):
    mailbox = m365_mailbox("nospf.example")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mailbox_domain_check_on_commit(mailbox)
    assert not SendingDomain.objects.exists()  # nothing asked before the commit
    [check] = callbacks
    check()
    assert SendingDomain.objects.get(domain="nospf.example").holds_mail



@pytest.mark.parametrize(("fields", "profile"), [
    ({"provider": "smtp", "smtp_host": "smtp.office365.com"}, "microsoft365"),
    ({"provider": "smtp", "smtp_host": "SMTP.Gmail.com."}, "google"),
    ({"provider": "resend"}, "resend"),
    ({"provider": "smtp", "smtp_host": "mail.example-hosting.net"}, "generic"),
    ({"provider": "smtp", "smtp_host": "notoffice365.com"}, "generic"),
])
def test_the_provider_is_guessed_from_how_the_mailbox_sends(fields, profile):
    assert provider_profile(MailboxFactory.build(**fields)).name == profile
