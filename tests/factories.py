"""One plain factory per model. Defaults make a valid row; tests set what they assert on."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from cam import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@cam.test")
    is_staff = True
    password = factory.django.Password("correct-horse-battery")


class SuperuserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    is_superuser = True


class MailboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Mailbox

    name = factory.Sequence(lambda n: f"Mailbox {n}")
    from_email = factory.Sequence(lambda n: f"sender{n}@outreach.test")
    from_name = "Alex Sender"
    # A mailbox in a test sends like one that is already warm unless the test turns its warm-up on.
    warmup_enabled = False


class MailboxFolderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.MailboxFolder

    mailbox = factory.SubFactory(MailboxFactory)
    name = "INBOX"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    status = models.Campaign.Status.ACTIVE
    icp_industries = factory.LazyFunction(lambda: ["software"])
    icp_title_keywords = factory.LazyFunction(lambda: ["cto", "founder"])
    icp_countries = factory.LazyFunction(lambda: ["DE"])


class SequenceStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.SequenceStep

    campaign = factory.SubFactory(CampaignFactory)
    position = factory.Sequence(lambda n: n + 1)
    subject_template = "Quick question, {{ first_name|default:'there' }}"
    body_template = "Hi {{ first_name|default:'there' }},\n\nWould {{ company }} like fewer chores?\n"


class LeadSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.LeadSource

    campaign = factory.SubFactory(CampaignFactory)
    name = factory.Sequence(lambda n: f"Source {n}")
    kind = models.LeadSource.Kind.CSV
    config = factory.LazyFunction(lambda: {"path": "leads.csv"})


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Lead

    campaign = factory.SubFactory(CampaignFactory)
    email = factory.Sequence(lambda n: f"lead{n}@company{n}.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company = factory.Faker("company")
    title = "CTO"
    industry = "software"
    country = "DE"


class LeadEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.LeadEvent

    lead = factory.SubFactory(LeadFactory)
    from_status = models.Lead.Status.IN_SEQUENCE
    to_status = models.Lead.Status.INTERESTED
    actor = "system:reply"
    reason = "Positive reply"


class HarvestRejectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.HarvestRejection

    campaign = factory.SubFactory(CampaignFactory)
    line = factory.Sequence(lambda n: n + 2)
    email = "not-an-address"
    reason = "invalid email 'not-an-address': An email address must have an @-sign."
    raw_data = factory.LazyFunction(lambda: {"email": "not-an-address"})


class SuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Suppression

    email = factory.Sequence(lambda n: f"blocked{n}@suppressed.test")
    reason = models.Suppression.Reason.MANUAL


class OutboundEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.OutboundEmail

    lead = factory.SubFactory(LeadFactory)
    campaign = factory.SelfAttribute("lead.campaign")
    step = factory.SubFactory(SequenceStepFactory, campaign=factory.SelfAttribute("..campaign"))
    mailbox = factory.SubFactory(MailboxFactory)
    to_email = factory.SelfAttribute("lead.email")
    subject = "Quick question"
    body_text = "Hi there"
    message_id = factory.Sequence(lambda n: f"<cam.{n}@outreach.test>")


class ProviderEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ProviderEvent

    provider = models.Mailbox.Provider.RESEND
    event_id = factory.Sequence(lambda n: f"msg_{n:020d}")
    event_type = "delivered"
    provider_message_id = factory.Sequence(lambda n: f"re-{n}")


class InboundEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.InboundEmail

    mailbox = factory.SubFactory(MailboxFactory)
    folder = "INBOX"
    uidvalidity = 1
    uid = factory.Sequence(lambda n: n + 1)
    message_id = factory.Sequence(lambda n: f"<reply.{n}@lead.test>")
    from_email = factory.Sequence(lambda n: f"lead{n}@company.test")
    subject = "Re: Quick question"
    new_text = "Sounds interesting, let's talk."


class JobExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.JobExecution

    execution_id = factory.Sequence(lambda n: f"harvest:global:slot-{n}")
    job = "harvest"
    status = models.JobExecution.Status.COMPLETED
    started_at = factory.LazyFunction(timezone.now)


class LeaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Lease

    name = factory.Sequence(lambda n: f"job:harvest:{n}")
    holder = "worker-1"
    acquired_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=5))


class WorkerHeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.WorkerHeartbeat

    worker_id = factory.Sequence(lambda n: f"worker-{n}")
    status = models.WorkerHeartbeat.Status.IDLE
    last_seen_at = factory.LazyFunction(timezone.now)


class AlertChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.AlertChannel

    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = models.AlertChannel.Kind.EMAIL
    recipients = "sales@cam.test"


class HumanAlertLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.HumanAlertLog

    alert_type = models.HumanAlertLog.AlertType.POSITIVE_REPLY
    title = "Positive reply"
    idempotency_key = factory.Sequence(lambda n: f"positive-reply:{n}")


class CampaignRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.CampaignRule

    campaign = factory.SubFactory(CampaignFactory)
    metric = models.CampaignRule.Metric.HARD_BOUNCE_RATE
    comparison = models.CampaignRule.Comparison.ABOVE
    threshold = 5
    window = 100
    min_sample = 20
    action = models.CampaignRule.Action.PAUSE


class RuleDecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.RuleDecision

    rule = factory.SubFactory(CampaignRuleFactory)
    campaign = factory.SelfAttribute("rule.campaign")
    metric = factory.SelfAttribute("rule.metric")
    measured_value = 7
    threshold = factory.SelfAttribute("rule.threshold")
    sample_size = 100
    action = factory.SelfAttribute("rule.action")
    status_before = models.Campaign.Status.ACTIVE
    status_after = models.Campaign.Status.PAUSED
    reason = "Hard-bounce rate 7 % over the last 100 sends is above 5 %"
    evidence_until = factory.LazyFunction(timezone.now)


class MetricSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.MetricSnapshot

    campaign = factory.SubFactory(CampaignFactory)
    scope = "campaign"
    key = factory.LazyAttribute(lambda o: f"campaign:{o.campaign.pk}")
    window_days = 7
    window = factory.LazyFunction(lambda: {"sent": 0})
    all_time = factory.LazyFunction(lambda: {"sent": 0})
    computed_at = factory.LazyFunction(timezone.now)


class CamAPIKeyFactory(factory.django.DjangoModelFactory):
    """A stored key; the plain key (shown once in real use) is kept on the instance as ``key``."""

    class Meta:
        model = models.CamAPIKey

    name = factory.Sequence(lambda n: f"key {n}")
    read_only = False

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        api_key, key = model_class.objects.create_key(**kwargs)
        api_key.key = key
        return api_key


# An email a sender has in the provider's hands: CLAIMED, and named by its holder's SendInFlight row. Tests read
# it as a state of its own.
IN_FLIGHT = "IN_FLIGHT"


def put_in_flight(email: models.OutboundEmail, *, holder: str) -> None:
    """``email`` as a sender that died while handing it over left it: claimed by ``holder``, in flight."""
    models.OutboundEmail.objects.filter(pk=email.pk).update(status=models.OutboundEmail.Status.CLAIMED,
                                                            claimed_by=holder)
    models.SendInFlight.objects.update_or_create(holder=holder, defaults={"email_id": email.pk})


def email_states(emails) -> list[str]:
    """Each of ``emails``'s status, or ``IN_FLIGHT`` for the one a sender has in flight."""
    flying = set(models.SendInFlight.objects.values_list("email_id", "holder"))
    return [IN_FLIGHT if status == models.OutboundEmail.Status.CLAIMED and (pk, holder) in flying else status
            for pk, status, holder in emails.values_list("pk", "status", "claimed_by")]
