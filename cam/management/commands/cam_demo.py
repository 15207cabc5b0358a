from django.core.management.base import BaseCommand, CommandError

from cam.demo import DemoSmtp, demo_seed
from cam.jobs.runner import Trigger, run_job
from cam.models.fields import validate_env_name


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{value!r} should look like HOST:PORT, e.g. 127.0.0.1:1025.")
    return host, int(port)


class Command(BaseCommand):
    help = ("Create the demo campaign, its mailbox, a three-step sequence and sample leads, then score and "
            "enrol them so the demo sends at once (idempotent).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--smtp", metavar="HOST:PORT",
                            help="Send the demo's mail to this SMTP server (e.g. a local mail catcher) "
                                 "instead of printing it.")
        parser.add_argument("--smtp-user", default="", help="SMTP user name (then STARTTLS is used).")
        parser.add_argument("--smtp-password-env", default="", metavar="VAR",
                            help="Name of the environment variable holding the SMTP password.")
        parser.add_argument("--no-enrol", action="store_true", help="Only create the data; do not score or enrol.")

    def handle(self, *args, **options) -> None:
        smtp = None
        if options["smtp"]:
            host, port = host_port(options["smtp"])
            if options["smtp_password_env"]:
                try:
                    validate_env_name(options["smtp_password_env"])
                except Exception:
                    raise CommandError("--smtp-password-env takes the NAME of an environment variable, "
                                       "not the password itself.") from None
            smtp = DemoSmtp(host=host, port=port, username=options["smtp_user"],
                            password_env=options["smtp_password_env"])
        elif options["smtp_user"] or options["smtp_password_env"]:
            raise CommandError("--smtp-user and --smtp-password-env need --smtp HOST:PORT.")
        summary = demo_seed(smtp=smtp)
        self.stdout.write(self.style.SUCCESS(
            f"Demo campaign “{summary.campaign.name}” (id {summary.campaign.pk}) is ready: "
            f"{summary.steps} steps, mailbox {summary.mailbox.from_email} "
            f"({summary.mailbox.get_provider_display()}"
            f"{f' at {summary.mailbox.smtp_host}:{summary.mailbox.smtp_port}' if smtp else ''}), "
            f"{summary.leads_total} leads ({summary.leads_created} new)."
        ))
        if not options["no_enrol"]:
            for job in ("score", "qualify"):
                result = run_job(job, campaign=summary.campaign, trigger=Trigger.COMMAND)
                self.stdout.write(f"{job}: {result.status} {result.counts}")
