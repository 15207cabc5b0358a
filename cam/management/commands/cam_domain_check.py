from django.core.management.base import BaseCommand, CommandError

from cam.domains.services import domain_check, domain_of
from cam.models import Mailbox

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


class Command(BaseCommand):
    help = ("Check the SPF, DKIM, DMARC and MX records of sending domains and print what to fix. Without a "
            "domain, checks every active mailbox's. Exits 1 when a domain holds its mailboxes' leads.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("domains", nargs="*", metavar="DOMAIN")

    def handle(self, *args, **options) -> None:
        domains = [domain_of("@" + name) for name in options["domains"]] or sorted(
            {domain_of(email) for email in Mailbox.objects.filter(is_active=True).values_list("from_email", flat=True)})
        if not domains:
            raise CommandError("No domain given and no active mailbox: name a domain, e.g. cam_domain_check "
                               "example.com.")
        held = []
        for domain in domains:
            row = domain_check(domain)
            state = "held" if row.holds_leads else "overridden" if row.holds_mail else "sending"
            self.stdout.write(f"{row.domain}: {MARKS.get(row.verdict, row.verdict)} ({state})")
            for check in row.checks:
                self.stdout.write(f"  {MARKS[check['verdict']]} {check['name']}: {check['summary']}")
                if check["fix"]:
                    self.stdout.write(f"       fix: {check['fix']}")
            if row.holds_leads:
                held.append(row.domain)
        if held:
            raise CommandError(f"Held until SPF and DMARC pass (or staff override): {', '.join(held)}.",
                               returncode=1)
