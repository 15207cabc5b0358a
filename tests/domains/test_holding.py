"""A mailbox whose domain fails SPF or DMARC holds its leads in the planner, until overridden with a reason."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from cam.diagnose import campaign_diagnosis
from cam.domains.services import DomainProblem, domain_check, domain_hold_again, domain_override, domains_check_all
from cam.models import Lead, OutboundEmail, SendingDomain
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outbound_send_batch
from tests.domains.conftest import m365_mailbox
from tests.factories import CampaignFactory, LeadFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday, inside the send window


def sending_from(domain: str):
    mailbox = m365_mailbox(domain, daily_cap=100, min_gap_seconds=0)
    campaign = CampaignFactory(send_days=[1, 2, 3, 4, 5], send_start_hour=9, send_end_hour=17, timezone="UTC")
    SequenceStepFactory(campaign=campaign, position=1, subject_template="Hello", body_template="Hi")
    campaign.mailboxes.set([mailbox])
    lead = LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE, next_send_at=NOW - timedelta(minutes=5))
    return mailbox, lead


def test_a_failing_domain_holds_its_leads_until_overridden_with_a_reason_and_holds_again(zones):
    staff = get_user_model().objects.create_user("mira", password="x", is_staff=True)
    _, lead = sending_from("nodmarc.example")
    domain = domain_check("nodmarc.example")
    assert outreach_plan(now=NOW) == {"due": 1, "planned": 0, "domain_not_authenticated": 1}
    lead.refresh_from_db()
    assert lead.blocked_reason == Lead.BlockedReason.DOMAIN_NOT_AUTHENTICATED

    with pytest.raises(DomainProblem, match="Say why"):
        domain_override(domain, reason="  ", actor="staff:mira", user=staff)
    domain = domain_override(domain, reason="DMARC record goes live on Monday; warm contacts only",
                             actor="staff:mira", user=staff,
                             now=NOW)
    assert (domain.override_by, domain.override_at, domain.holds_leads) == (staff, NOW, False)
    assert outreach_plan(now=NOW)["planned"] == 1
    # Checking again keeps the override: it is staff's decision, not DNS's.
    assert domain_check("nodmarc.example").holds_leads is False

    domain = domain_hold_again(domain, actor="staff:mira", reason="Monday came and went", now=NOW)
    assert (domain.override_reason, domain.override_at, domain.holds_leads) == ("", None, True)
    assert [(entry["action"], entry["by"], entry["reason"]) for entry in domain.history] == [
        ("override", "staff:mira", "DMARC record goes live on Monday; warm contacts only"),
        ("hold", "staff:mira", "Monday came and went")]
    with pytest.raises(DomainProblem, match="not overridden"):
        domain_hold_again(domain, actor="staff:mira")

    second = LeadFactory(campaign=lead.campaign, status=Lead.Status.IN_SEQUENCE,
                         next_send_at=NOW - timedelta(minutes=5))
    assert outreach_plan(now=NOW)["domain_not_authenticated"] == 1
    second.refresh_from_db()
    assert second.blocked_reason == Lead.BlockedReason.DOMAIN_NOT_AUTHENTICATED


def test_emails_planned_before_their_domain_began_failing_wait_too_and_their_leads_say_why(zones):
    staff = get_user_model().objects.create_user("mira", password="x", is_staff=True)
    mailbox, lead = sending_from("nodmarc.example")
    assert outreach_plan(now=NOW)["planned"] == 1  # the domain was not checked yet
    domain = domain_check("nodmarc.example")
    mailbox.provider = "console"  # what matters here is whether it is handed over at all
    mailbox.save()

    assert outbound_send_batch(mailbox_id=mailbox.pk, now=NOW) == {"domain_held": 1}
    email = OutboundEmail.objects.get()
    lead.refresh_from_db()
    assert (email.status, email.attempts) == (OutboundEmail.Status.PENDING, 0)
    assert lead.blocked_reason == Lead.BlockedReason.DOMAIN_NOT_AUTHENTICATED

    domain_override(domain, reason="DMARC goes live today", actor="staff:mira", user=staff, now=NOW)
    assert outbound_send_batch(mailbox_id=mailbox.pk, now=NOW)["sent"] == 1
    lead.refresh_from_db()
    assert lead.blocked_reason == ""


@pytest.mark.parametrize("domain", ["pnone.example", "nodkim.example", "slow.example"])
def test_warnings_and_dns_failures_never_hold(zones, domain):
    sending_from(domain)
    domain_check(domain)
    assert outreach_plan(now=NOW)["planned"] == 1


def test_a_domain_never_checked_does_not_hold():
    sending_from("unchecked.example")
    assert outreach_plan(now=NOW)["planned"] == 1
    assert OutboundEmail.objects.count() == 1


def test_the_daily_job_checks_every_active_mailboxs_domain(zones):
    sending_from("pass.example")
    sending_from("nospf.example")
    m365_mailbox("pnone.example", is_active=False)
    counts = domains_check_all()
    assert counts == {"domains": 2, "pass": 1, "warn": 0, "fail": 1, "held": ["nospf.example"]}
    assert set(SendingDomain.objects.values_list("domain", flat=True)) == {"pass.example", "nospf.example"}


def test_the_command_prints_each_check_and_what_to_fix_and_exits_1_for_a_held_domain(zones, capsys):
    m365_mailbox("pass.example")
    call_command("cam_domain_check", "pass.example")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "pass.example: PASS (sending)"
    assert "  PASS dmarc: DMARC policy p=reject." in out

    m365_mailbox("otherinclude.example")
    with pytest.raises(CommandError, match=r"Held until SPF and DMARC pass .*: otherinclude\.example\.") as caught:
        call_command("cam_domain_check", "OtherInclude.example", "pass.example")
    assert caught.value.returncode == 1
    out = capsys.readouterr().out
    assert "otherinclude.example: FAIL (held)" in out
    assert "       fix: Add `include:spf.protection.outlook.com` to your SPF record." in out


def test_diagnose_says_which_domain_holds_the_leads_and_where_to_fix_it(zones):
    _, lead = sending_from("nodmarc.example")
    domain_check("nodmarc.example")
    outreach_plan(now=NOW)
    diagnosis = campaign_diagnosis(lead.campaign, now=NOW)
    [held] = diagnosis.held_back
    assert held.reason == Lead.BlockedReason.DOMAIN_NOT_AUTHENTICATED
    assert held.advice.startswith("The sending domain nodmarc.example fails SPF or DMARC")
    assert "Setup › Sending domains" in held.advice
