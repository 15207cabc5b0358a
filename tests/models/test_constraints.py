"""The database itself refuses what would break a guarantee; each constraint is tried once."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cam.models import Campaign, CampaignRule, InboundEmail, Lead, Suppression
from tests import factories

pytestmark = pytest.mark.django_db


def refused(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_it_refuses_the_same_address_twice_in_a_campaign_whatever_its_case():
    lead = factories.LeadFactory(email="anna@brightlane.example.com")
    assert refused(lambda: factories.LeadFactory(campaign=lead.campaign, email="Anna@BrightLane.example.com"))


def test_it_allows_the_same_address_in_two_campaigns():
    lead = factories.LeadFactory(email="anna@brightlane.example.com")
    other = factories.LeadFactory(email="anna@brightlane.example.com")
    assert other.campaign != lead.campaign


def test_it_derives_and_lowercases_the_email_domain():
    lead = factories.LeadFactory(email="Anna.Schmidt@BrightLane.Example.com")
    lead.refresh_from_db()
    assert (lead.email, lead.email_domain) == ("anna.schmidt@brightlane.example.com", "brightlane.example.com")


def test_it_refuses_a_lead_score_above_100():
    assert refused(lambda: factories.LeadFactory(score=101))


def test_it_refuses_an_empty_lead_address():
    assert refused(lambda: factories.LeadFactory(email=""))


def test_it_refuses_a_second_email_for_the_same_lead_and_step():
    sent = factories.OutboundEmailFactory()
    assert refused(lambda: factories.OutboundEmailFactory(lead=sent.lead, step=sent.step, mailbox=sent.mailbox))


def test_it_refuses_a_duplicate_outbound_message_id():
    sent = factories.OutboundEmailFactory(message_id="<one@outreach.test>")
    assert refused(lambda: factories.OutboundEmailFactory(message_id="<one@outreach.test>", mailbox=sent.mailbox))


def test_it_refuses_the_same_imap_uid_twice_in_a_folder():
    reply = factories.InboundEmailFactory(uidvalidity=7, uid=42)
    assert refused(lambda: factories.InboundEmailFactory(mailbox=reply.mailbox, uidvalidity=7, uid=42))


def test_it_keeps_the_same_uid_under_a_new_uidvalidity_or_another_folder():
    reply = factories.InboundEmailFactory(uidvalidity=7, uid=42)
    factories.InboundEmailFactory(mailbox=reply.mailbox, uidvalidity=8, uid=42)
    factories.InboundEmailFactory(mailbox=reply.mailbox, folder="Junk", uidvalidity=7, uid=42)
    assert InboundEmail.objects.filter(mailbox=reply.mailbox, uid=42).count() == 3


def test_it_refuses_a_confidence_outside_0_to_1():
    assert refused(lambda: factories.InboundEmailFactory(confidence=1.5))


def test_it_refuses_a_duplicate_execution_id():
    factories.JobExecutionFactory(execution_id="harvest:global:2026-11-22T02:00")
    assert refused(lambda: factories.JobExecutionFactory(execution_id="harvest:global:2026-11-22T02:00"))


def test_it_refuses_a_duplicate_alert_idempotency_key():
    factories.HumanAlertLogFactory(idempotency_key="positive-reply:17")
    assert refused(lambda: factories.HumanAlertLogFactory(idempotency_key="positive-reply:17"))


def test_it_refuses_a_second_lease_with_the_same_name():
    factories.LeaseFactory(name="worker-cycle")
    assert refused(lambda: factories.LeaseFactory(name="worker-cycle"))


def test_it_refuses_a_second_heartbeat_for_a_worker():
    factories.WorkerHeartbeatFactory(worker_id="host-a")
    assert refused(lambda: factories.WorkerHeartbeatFactory(worker_id="host-a"))


def test_it_refuses_a_duplicate_suppressed_address_or_domain():
    factories.SuppressionFactory(email="gone@example.com")
    factories.SuppressionFactory(email="", domain="spamtrap.example.com")
    assert refused(lambda: factories.SuppressionFactory(email="GONE@example.com"))
    assert refused(lambda: factories.SuppressionFactory(email="", domain="SpamTrap.example.com"))


def test_it_refuses_a_suppression_with_both_or_neither_address_and_domain():
    assert refused(lambda: Suppression.objects.create(email="a@example.com", domain="example.com"))
    assert refused(lambda: Suppression.objects.create(email="", domain=""))


def test_it_refuses_two_steps_at_one_position():
    step = factories.SequenceStepFactory(position=1)
    assert refused(lambda: factories.SequenceStepFactory(campaign=step.campaign, position=1))


def test_it_refuses_a_step_at_position_zero():
    assert refused(lambda: factories.SequenceStepFactory(position=0))


def test_it_refuses_two_sources_with_one_name_in_a_campaign():
    source = factories.LeadSourceFactory(name="Trade fair list")
    assert refused(lambda: factories.LeadSourceFactory(campaign=source.campaign, name="Trade fair list"))


def test_it_refuses_two_folders_with_one_name_in_a_mailbox():
    folder = factories.MailboxFolderFactory(name="INBOX")
    assert refused(lambda: factories.MailboxFolderFactory(mailbox=folder.mailbox, name="INBOX"))


@pytest.mark.parametrize(
    "values",
    [
        {"min_score": 101},
        {"send_start_hour": 24},
        {"send_end_hour": 25},
        {"send_end_hour": 0},
        {"send_start_hour": 17, "send_end_hour": 9},
        {"daily_cap": 0},
        {"no_reply_days": 0},
        {"icp_company_size_min": 500, "icp_company_size_max": 10},
        {"weight_title": 101},
        {"penalty_role_account": 150},
        {"max_hard_bounce_rate": 101},
        {"max_complaint_rate": -1},
    ],
    ids=lambda values: ",".join(values),
)
def test_it_refuses_a_campaign_value_out_of_range(values):
    assert refused(lambda: factories.CampaignFactory(**values))


def test_it_refuses_a_campaign_name_twice():
    factories.CampaignFactory(name="Q4 logistics")
    assert refused(lambda: factories.CampaignFactory(name="Q4 logistics"))


@pytest.mark.parametrize("values", [{"daily_cap": 0}, {"smtp_port": 70000}, {"imap_port": 0}],
                         ids=lambda values: ",".join(values))
def test_it_refuses_a_mailbox_value_out_of_range(values):
    assert refused(lambda: factories.MailboxFactory(**values))


def test_it_refuses_a_mailbox_sender_address_twice():
    factories.MailboxFactory(from_email="alex@outreach.example.com")
    assert refused(lambda: factories.MailboxFactory(from_email="Alex@Outreach.example.com"))


def test_it_refuses_an_alert_channel_name_twice():
    factories.AlertChannelFactory(name="Sales team")
    assert refused(lambda: factories.AlertChannelFactory(name="Sales team"))


def test_it_keeps_the_documented_table_names_for_monitoring_queries():
    from django.db import connection

    factories.WorkerHeartbeatFactory(worker_id="host-a", last_seen_at=timezone.now() - timedelta(seconds=5))
    factories.HumanAlertLogFactory(alert_type="POSITIVE_REPLY", title="Anna is interested", sent_successfully=True,
                                   sent_at=timezone.now())
    factories.OutboundEmailFactory(status="SENT")
    factories.OutboundEmailFactory(status="FAILED")
    with connection.cursor() as cursor:
        cursor.execute("SELECT worker_id, status, last_seen_at FROM cam_worker_heartbeats")
        assert [row[:2] for row in cursor.fetchall()] == [("host-a", "IDLE")]
        cursor.execute("SELECT alert_type, title, sent_successfully, sent_at FROM cam_human_alert_logs")
        assert [row[:3] for row in cursor.fetchall()] == [("POSITIVE_REPLY", "Anna is interested", True)]
        cursor.execute("SELECT status, COUNT(*) FROM outbound_emails WHERE created_at IS NOT NULL "
                       "GROUP BY status ORDER BY status")
        assert cursor.fetchall() == [("FAILED", 1), ("SENT", 1)]


def test_it_defaults_new_rows_to_their_starting_status():
    assert factories.CampaignFactory.build(status=Campaign.Status.DRAFT).status == "DRAFT"
    assert Lead(email="x@example.com").status == Lead.Status.NEW


@pytest.mark.parametrize(("field", "value"), [("comparison", "ABOVE"), ("action", "STOP"), ("scope", "domain"),
                                              ("metric", "open_rate")])
def test_it_refuses_a_rule_value_evaluation_does_not_know(field, value):
    rule = factories.CampaignRuleFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        type(rule).objects.filter(pk=rule.pk).update(**{field: value})


def test_it_accepts_every_rule_choice():
    rule = factories.CampaignRuleFactory()
    for field in ("comparison", "action", "scope", "metric"):
        for value in CampaignRule._meta.get_field(field).choices:
            CampaignRule.objects.filter(pk=rule.pk).update(**{field: value[0]})  # no IntegrityError
