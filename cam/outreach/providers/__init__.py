"""Mail providers: one small class per kind of mailbox, chosen through a registry."""

from cam.outreach.providers.base import MailProvider, SendResult, get_provider

__all__ = ["MailProvider", "SendResult", "get_provider"]
