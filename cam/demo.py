"""Demo data: a campaign that CAM can act on at once, safe to create again and again."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from cam.campaigns import campaign_rules_ensure_defaults
from cam.models import Campaign, Lead, Mailbox, MailboxFolder, Security, SequenceStep
from cam.secret_settings import secret_changes, secret_changes_record

DEMO_CAMPAIGN_NAME = "Demo: software leaders in DACH"
DEMO_MAILBOX_EMAIL = "demo@outreach.example.com"

DEMO_STEPS: list[dict[str, Any]] = [
    {
        "position": 1,
        "delay_days": 0,
        "subject_template": "{{ company|default:'your team' }} and fewer manual hand-offs",
        "body_template": (
            "Hi {{ first_name|default:'there' }},\n\n"
            "teams like {{ company|default:'yours' }} tell us their {{ industry|default:'operations' }} "
            "hand-offs eat hours every week. We cut that in half for similar companies.\n\n"
            "Worth a 15-minute call next week?\n\nAlex"
        ),
    },
    {
        "position": 2,
        "delay_days": 3,
        "subject_template": "",
        "body_template": (
            "Hi {{ first_name|default:'there' }},\n\n"
            "just bringing this back to the top of your inbox. Happy to send a two-page summary instead "
            "if that is easier.\n\nAlex"
        ),
    },
    {
        "position": 3,
        "delay_days": 5,
        "subject_template": "",
        "body_template": (
            "Hi {{ first_name|default:'there' }},\n\n"
            "I will stop here. If fewer hand-offs ever becomes a priority at {{ company|default:'your company' }}, "
            "just reply to this email.\n\nAlex"
        ),
    },
]

# (first, last, company, domain, title, industry, country, size)
DEMO_PEOPLE = [
    ("Anna", "Schmidt", "Brightlane Software", "brightlane", "CTO", "software", "DE", 120),
    ("Lukas", "Weber", "Nordkap Logistics", "nordkap-logistics", "Head of Operations", "logistics", "DE", 450),
    ("Sophie", "Keller", "Alpenwerk Analytics", "alpenwerk", "Founder & CEO", "software", "AT", 35),
    ("Jonas", "Fischer", "Rheinpfad Health", "rheinpfad", "VP Engineering", "healthcare", "DE", 800),
    ("Lea", "Wagner", "Quellwasser Energy", "quellwasser", "Chief Digital Officer", "energy", "CH", 2300),
    ("Felix", "Becker", "Tannenhof Retail", "tannenhof", "Head of E-Commerce", "retail", "DE", 640),
    ("Marie", "Hoffmann", "Seeblick Systems", "seeblick", "CTO", "software", "CH", 90),
    ("Paul", "Schulz", "Eisenbahnhof Freight", "eisenbahnhof", "Operations Manager", "logistics", "AT", 310),
    ("Emma", "Koch", "Lindgrün Labs", "lindgruen", "Co-founder", "biotech", "DE", 25),
    ("Leon", "Richter", "Sternwarte Finance", "sternwarte", "Head of IT", "finance", "DE", 1500),
    ("Mia", "Klein", "Bergpass Mobility", "bergpass", "VP Product", "software", "AT", 210),
    ("Noah", "Wolf", "Kiesel & Partner", "kiesel-partner", "Managing Partner", "consulting", "DE", 40),
    ("Hannah", "Schröder", "Flussdelta Media", "flussdelta", "Head of Engineering", "media", "DE", 160),
    ("Elias", "Neumann", "Glashütte Robotics", "glashuette-robotics", "CTO", "manufacturing", "DE", 900),
    ("Lina", "Schwarz", "Morgenrot Travel", "morgenrot", "Director of Operations", "travel", "AT", 380),
    ("Ben", "Zimmermann", "Wolkenfrei Cloud", "wolkenfrei", "Founder", "software", "CH", 18),
    ("Clara", "Braun", "Ackerland Foods", "ackerland", "Head of Supply Chain", "food", "DE", 1200),
    ("Finn", "Krüger", "Leuchtturm Security", "leuchtturm", "CISO", "software", "DE", 270),
    ("Ella", "Hofmann", "Bachlauf Insurance", "bachlauf", "Head of Digital", "insurance", "CH", 3100),
    ("Luis", "Hartmann", "Feldweg Agritech", "feldweg", "CEO", "agritech", "AT", 55),
    ("Ida", "Lange", "Sonnenhang Solar", "sonnenhang", "COO", "energy", "DE", 140),
    ("Theo", "Schmitt", "Uferweg Marine", "uferweg", "Fleet Manager", "logistics", "DE", 520),
    ("Lena", "Werner", "Nebelhorn Games", "nebelhorn", "Studio Director", "gaming", "DE", 75),
    ("Max", "Krause", "Waldrand Furniture", "waldrand", "Head of Operations", "retail", "AT", 430),
    ("Laura", "Meier", "Gipfelblick Hotels", "gipfelblick", "General Manager", "hospitality", "CH", 600),
    ("Anton", "Lehmann", "Kreuzberg Devworks", "kreuzberg-devworks", "Engineering Manager", "software", "DE", 60),
    ("Frieda", "Köhler", "Hafenkran Ports", "hafenkran", "IT Director", "logistics", "DE", 2800),
    ("Oskar", "Herrmann", "Stadtwerk Data", "stadtwerk-data", "Head of Data", "software", "DE", 190),
    ("Greta", "König", "Mühlbach Pharma", "muehlbach", "VP Operations", "pharma", "CH", 1700),
    ("Karl", "Walter", "Sandstein Construction", "sandstein", "Managing Director", "construction", "AT", 350),
]

# A few addresses that scoring should treat with care: role accounts.
DEMO_ROLE_ACCOUNTS = [
    ("info", "Brightlane Software", "brightlane", "software", "DE", 120),
    ("sales", "Tannenhof Retail", "tannenhof", "retail", "DE", 640),
    ("contact", "Wolkenfrei Cloud", "wolkenfrei", "software", "CH", 18),
    ("office", "Kiesel & Partner", "kiesel-partner", "consulting", "DE", 40),
]


@dataclass(frozen=True)
class DemoSummary:
    campaign: Campaign
    mailbox: Mailbox
    steps: int
    leads_total: int
    leads_created: int


def _demo_leads(campaign: Campaign) -> list[Lead]:
    now = timezone.now()
    leads = []
    for first, last, company, domain, title, industry, country, size in DEMO_PEOPLE:
        # mypy matches no literal to typeshed's union of dict types for maketrans.
        local = f"{first}.{last}".lower().translate(str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}))  # type: ignore[arg-type]
        record = {"first_name": first, "last_name": last, "company": company, "title": title,
                  "industry": industry, "country": country, "company_size": size}
        leads.append(Lead(campaign=campaign, email=f"{local}@{domain}.example.com", first_name=first,
                          last_name=last, company=company, title=title, industry=industry, country=country,
                          company_size=size, website=f"https://{domain}.example.com", harvested_at=now,
                          raw_data={"source": "demo", **record}))
    for local, company, domain, industry, country, size in DEMO_ROLE_ACCOUNTS:
        leads.append(Lead(campaign=campaign, email=f"{local}@{domain}.example.com", company=company,
                          industry=industry, country=country, company_size=size, is_role_account=True,
                          website=f"https://{domain}.example.com", harvested_at=now,
                          raw_data={"source": "demo", "company": company}))
    return leads


@dataclass(frozen=True)
class DemoSmtp:
    """Where the demo mailbox should send instead of the console (a local mail catcher, say)."""

    host: str
    port: int
    username: str = ""
    password_env: str = ""


@dataclass(frozen=True)
class DemoImap:
    """The inbox the demo mailbox's replies are read from.

    Its INBOX is read from the first poll on; ``backfill_days`` also reads the mail of those last days.
    """

    host: str
    port: int
    username: str
    password_env: str
    backfill_days: int = 0


@transaction.atomic
def demo_seed(*, smtp: DemoSmtp | None = None, imap: DemoImap | None = None) -> DemoSummary:
    """Create (or complete) the demo campaign, its mailbox, sequence and leads.

    Existing rows are left as they are, so staff edits to the demo survive a second run; only
    ``smtp``, when given, re-points the demo mailbox at that server.
    """
    mailbox, _ = Mailbox.objects.get_or_create(
        from_email=DEMO_MAILBOX_EMAIL,
        defaults={"name": "Demo mailbox", "from_name": "Alex from CAM", "provider": Mailbox.Provider.CONSOLE,
                  # Already warm, and 100 an hour: the demo's emails leave at once, whatever the hour, rather
                  # than spread over the day as a real mailbox's are (cam.outreach.pacing).
                  "daily_cap": 2400, "min_gap_seconds": 0, "warmup_enabled": False},
    )
    before = copy.copy(mailbox)  # as read: the updates below refresh ``mailbox``
    if smtp is not None:
        Mailbox.objects.filter(pk=mailbox.pk).update(
            provider=Mailbox.Provider.SMTP, smtp_host=smtp.host, smtp_port=smtp.port,
            smtp_security=Security.NONE if not smtp.username else Security.STARTTLS,
            smtp_username=smtp.username, smtp_password_env=smtp.password_env)
        mailbox.refresh_from_db()
    if imap is not None:
        # Plain IMAP is for a server on this machine (a test or demo server); real ones use SSL.
        Mailbox.objects.filter(pk=mailbox.pk).update(
            imap_host=imap.host, imap_port=imap.port, imap_username=imap.username,
            imap_password_env=imap.password_env,
            imap_security=Security.NONE if imap.host in ("127.0.0.1", "localhost", "::1") else Security.SSL)
        mailbox.refresh_from_db()
    changes, _ = secret_changes(Mailbox, before=lambda field: getattr(before, field),
                                after=lambda field: getattr(mailbox, field))
    secret_changes_record(obj=mailbox, changes=changes, actor="command:cam_demo")
    folder, _ = MailboxFolder.objects.get_or_create(mailbox=mailbox, name="INBOX")
    if imap is not None and folder.backfill_days != imap.backfill_days:
        MailboxFolder.objects.filter(pk=folder.pk).update(backfill_days=imap.backfill_days)
    campaign, created = Campaign.objects.get_or_create(
        name=DEMO_CAMPAIGN_NAME,
        defaults={
            "description": "Sample campaign created by `manage.py cam_demo`. Sends through the console mailbox.",
            "status": Campaign.Status.ACTIVE,
            "status_reason": "Created active by the demo",
            "status_changed_at": timezone.now(),
            "icp_industries": ["software", "logistics", "energy"],
            "icp_title_keywords": ["cto", "founder", "head of", "vp", "director"],
            "icp_countries": ["DE", "AT", "CH"],
            "icp_company_size_min": 20,
            "icp_company_size_max": 1000,
            "min_score": 50,
            # Open every day and every hour, so the demo acts at once.
            "send_days": [1, 2, 3, 4, 5, 6, 7],
            "send_start_hour": 0,
            "send_end_hour": 24,
            "timezone": "Europe/Berlin",
            "daily_cap": 100,
        },
    )
    if created:
        campaign.mailboxes.add(mailbox)
    campaign_rules_ensure_defaults(campaign)
    for step in DEMO_STEPS:
        SequenceStep.objects.get_or_create(campaign=campaign, position=step["position"], defaults=step)
    leads_before = Lead.objects.filter(campaign=campaign).count()
    Lead.objects.bulk_create(_demo_leads(campaign), ignore_conflicts=True)
    total = Lead.objects.filter(campaign=campaign).count()
    return DemoSummary(campaign=campaign, mailbox=mailbox, steps=campaign.steps.count(), leads_total=total,
                       leads_created=total - leads_before)
