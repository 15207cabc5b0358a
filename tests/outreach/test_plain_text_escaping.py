"""Plain text goes out as written; only the HTML part is HTML-escaped. Checked at a real SMTP server."""

import pytest

from cam.models import SequenceStep
from cam.outreach.rendering import LEAD_VARIABLES
from tests.outreach.test_sending import due_lead, open_campaign, send_now, smtp_mailbox

pytestmark = pytest.mark.django_db

TRICKY = "Seán O'Brien, Müller & Söhne <img src=x> \"quoted\""
TEXT_FIELDS = [name for name in LEAD_VARIABLES if name not in ("email", "company_size", "timezone")]


def test_every_lead_field_arrives_unescaped_in_text_and_escaped_in_html(smtp_server):
    campaign = open_campaign(smtp_mailbox(smtp_server))
    placeholders = " | ".join(f"{{{{ {name} }}}}" for name in TEXT_FIELDS)
    SequenceStep.objects.filter(campaign=campaign, position=1).update(
        subject_template="{{ company }} & {{ first_name }}", body_template=placeholders,
        html_template=f"<p>{placeholders}</p>")
    due_lead(campaign, email="sean@obrien.example.com", **{name: TRICKY for name in TEXT_FIELDS})

    assert send_now()["sent"] == 1

    (received,) = smtp_server.messages
    message = received.parsed
    assert message["Subject"].strip() == f"{TRICKY} & {TRICKY}"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith(" | ".join([TRICKY] * len(TEXT_FIELDS)))
    assert "&#x27;" not in text and "&amp;" not in text and "&lt;" not in text
    html = message.get_body(preferencelist=("html",)).get_content()
    escaped = "Seán O&#x27;Brien, Müller &amp; Söhne &lt;img src=x&gt; &quot;quoted&quot;"
    assert html.count(escaped) == len(TEXT_FIELDS)
    assert "<img src=x>" not in html
