"""CAM's tables, split by concern; import them from here."""

from cam.models.api_keys import CamAPIKey
from cam.models.campaigns import Campaign, SequenceStep
from cam.models.decisions import (
    CampaignRule,
    MetricCursor,
    MetricDay,
    MetricSnapshot,
    RuleDecision,
    RuleMeasurement,
)
from cam.models.domains import SendingDomain
from cam.models.leads import HarvestRejection, Lead, LeadEvent, LeadSource, Suppression
from cam.models.mail import (
    AnswerSnippet,
    InboundEmail,
    Mailbox,
    MailboxFolder,
    OutboundEmail,
    ProviderEvent,
    Reply,
    Security,
    SendInFlight,
)
from cam.models.operations import (
    AlertChannel,
    HumanAlertLog,
    JobExecution,
    JobRunDay,
    JobRunHour,
    Lease,
    SecretSettingChange,
    WorkerHeartbeat,
)

__all__ = [
    "AlertChannel",
    "AnswerSnippet",
    "CamAPIKey",
    "Campaign",
    "CampaignRule",
    "HarvestRejection",
    "HumanAlertLog",
    "InboundEmail",
    "JobExecution",
    "JobRunDay",
    "JobRunHour",
    "Lead",
    "LeadEvent",
    "LeadSource",
    "Lease",
    "Mailbox",
    "MailboxFolder",
    "MetricCursor",
    "MetricDay",
    "MetricSnapshot",
    "OutboundEmail",
    "ProviderEvent",
    "Reply",
    "RuleDecision",
    "RuleMeasurement",
    "SecretSettingChange",
    "Security",
    "SendInFlight",
    "SendingDomain",
    "SequenceStep",
    "Suppression",
    "WorkerHeartbeat",
]
