from django.core.management.base import BaseCommand, CommandError

from cam.demo import DemoImap, DemoSmtp, demo_seed
from cam.jobs.request import job_request
from cam.jobs.runner import Trigger
from cam.jobs.summary import counts_text
from cam.models.mail import MAX_BACKFILL_DAYS
from cam.secrets import secret_name_problem


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{value!r} should look like HOST:PORT, e.g. 127.0.0.1:1025.")
    return host, int(port)


def _check_env_name(option: str, value: str) -> None:
    if problem := secret_name_problem(value):
        raise CommandError(f"{option} takes the NAME of an environment variable, not the password itself. "
                           f"{problem}")


class Command(BaseCommand):
    help = ("Create the demo campaign, its mailbox, a three-step sequence and sample leads, then score and "
            "enrol them so the demo sends at once (idempotent).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--smtp", metavar="HOST:PORT",
                            help="Send the demo's mail to this SMTP server (e.g. a local mail catcher) "
                                 "instead of printing it.")
        parser.add_argument("--smtp-user", default="", help="SMTP user name (then STARTTLS is used).")
        parser.add_argument("--smtp-password-env", default="", metavar="VAR",
                            help="Name of the environment variable holding the SMTP password (CAM_SECRET_...).")
        parser.add_argument("--imap", metavar="HOST:PORT", help="Read the demo mailbox's replies from this IMAP "
                                                                "server (plain IMAP on this machine, SSL elsewhere).")
        parser.add_argument("--imap-user", default="", help="IMAP user name (required with --imap).")
        parser.add_argument("--imap-password-env", default="", metavar="VAR",
                            help="Name of the environment variable holding the IMAP password, CAM_SECRET_... "
                                 "(required with --imap).")
        parser.add_argument("--imap-backfill-days", type=int, default=0, metavar="N",
                            help="Also read the mail the inbox received in the last N days (0 to 365). By default "
                                 "only what arrives after the first poll is read.")
        parser.add_argument("--no-enrol", action="store_true", help="Only create the data; do not score or enrol.")

    def handle(self, *args, **options) -> None:
        smtp = None
        if options["smtp"]:
            host, port = host_port(options["smtp"])
            if options["smtp_password_env"]:
                _check_env_name("--smtp-password-env", options["smtp_password_env"])
            smtp = DemoSmtp(host=host, port=port, username=options["smtp_user"],
                            password_env=options["smtp_password_env"])
        elif options["smtp_user"] or options["smtp_password_env"]:
            raise CommandError("--smtp-user and --smtp-password-env need --smtp HOST:PORT.")
        imap = None
        if options["imap"]:
            host, port = host_port(options["imap"])
            if not options["imap_user"] or not options["imap_password_env"]:
                raise CommandError("--imap needs --imap-user and --imap-password-env.")
            _check_env_name("--imap-password-env", options["imap_password_env"])
            backfill = options["imap_backfill_days"]
            if not 0 <= backfill <= MAX_BACKFILL_DAYS:
                raise CommandError(f"--imap-backfill-days takes a number of days from 0 to {MAX_BACKFILL_DAYS}, "
                                   f"not {backfill}.")
            imap = DemoImap(host=host, port=port, username=options["imap_user"],
                            password_env=options["imap_password_env"], backfill_days=backfill)
        elif options["imap_user"] or options["imap_password_env"] or options["imap_backfill_days"]:
            raise CommandError("--imap-user, --imap-password-env and --imap-backfill-days need --imap HOST:PORT.")
        summary = demo_seed(smtp=smtp, imap=imap)
        self.stdout.write(self.style.SUCCESS(
            f"Demo campaign “{summary.campaign.name}” (id {summary.campaign.pk}) is ready: "
            f"{summary.steps} steps, mailbox {summary.mailbox.from_email} "
            f"({summary.mailbox.get_provider_display()}"
            f"{f' at {summary.mailbox.smtp_host}:{summary.mailbox.smtp_port}' if smtp else ''}), "
            f"{summary.leads_total} leads ({summary.leads_created} new)."
        ))
        if imap is not None:
            since = (f"plus what it received in the last {imap.backfill_days} day{'s' * (imap.backfill_days != 1)}"
                     if imap.backfill_days else "mail already there is left unread")
            self.stdout.write(f"Replies are read from {imap.host}:{imap.port} as {imap.username}: its INBOX from "
                              f"the first poll on, {since}.")
        if not options["no_enrol"]:
            # Through job_request, as cam_run_job: the jobs' rules and refusals hold here too.
            for job in ("score", "qualify"):
                outcome = job_request(job, where="foreground", trigger=Trigger.COMMAND, campaign=summary.campaign)
                if outcome.busy:  # another run of the job is going on: say so, and go on with the next job
                    self.stdout.write(f"{job}: not run. {outcome.busy_message}")
                else:
                    assert outcome.result is not None  # a foreground request that was not busy ran
                    self.stdout.write(f"{job}: {outcome.result.status} {counts_text(outcome.result.counts)}")
