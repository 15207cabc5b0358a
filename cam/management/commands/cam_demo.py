from django.core.management.base import BaseCommand

from cam.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo campaign, its console mailbox, a three-step sequence and sample leads (idempotent)."

    def handle(self, *args, **options) -> None:
        summary = demo_seed()
        self.stdout.write(self.style.SUCCESS(
            f"Demo campaign “{summary.campaign.name}” (id {summary.campaign.pk}) is ready: "
            f"{summary.steps} steps, mailbox {summary.mailbox.from_email}, "
            f"{summary.leads_total} leads ({summary.leads_created} new)."
        ))
