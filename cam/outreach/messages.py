"""Building the RFC 5322 message for one OutboundEmail, with thread and unsubscribe headers.

The message also carries, as its ``return_path`` attribute (not a header), the envelope sender it is
to be sent with: the mailbox's signed return path (``cam.return_path``) when it uses one,
else ``""`` (the From address). Only the SMTP provider sets an envelope sender; Resend uses its own.
"""

from __future__ import annotations

import uuid
from email.utils import formataddr

from django.core.mail import EmailMultiAlternatives

from cam.models import Mailbox, OutboundEmail
from cam.outreach.unsubscribe import list_unsubscribe_headers
from cam.return_path import signed_return_path


def new_message_id(mailbox: Mailbox) -> str:
    """A fresh, unguessable Message-ID in the sender's domain, e.g. ``<3f2a…@outreach.example.com>``.

    Kept short (``make_msgid``'s run to 70 characters) so the header is not folded onto two lines.
    """
    return f"<{uuid.uuid4().hex}@{mailbox.from_email.rpartition('@')[2]}>"


def build_message(outbound: OutboundEmail) -> EmailMultiAlternatives:
    """The message exactly as stored on ``outbound`` (rendered when it was planned), ready to send.

    ``outbound.lead`` and ``outbound.mailbox`` must be loaded.
    """
    mailbox = outbound.mailbox
    assert mailbox is not None  # planned emails all have their mailbox
    headers = {"Message-ID": outbound.message_id, **list_unsubscribe_headers(outbound.lead, mailbox)}
    if outbound.in_reply_to:
        headers["In-Reply-To"] = outbound.in_reply_to
        headers["References"] = outbound.references or outbound.in_reply_to
    message = EmailMultiAlternatives(
        subject=outbound.subject,
        body=outbound.body_text,
        from_email=formataddr((mailbox.from_name, mailbox.from_email)) if mailbox.from_name else mailbox.from_email,
        to=[outbound.to_email],
        reply_to=[mailbox.reply_to] if mailbox.reply_to else None,
        headers=headers,
    )
    if outbound.body_html:
        message.attach_alternative(outbound.body_html, "text/html")
    message.return_path = signed_return_path(outbound)  # type: ignore[attr-defined]  # read by the providers
    return message
