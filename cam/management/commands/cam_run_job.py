import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from cam.jobs.registry import UnknownJob, job_names
from cam.jobs.request import JobRefused, job_request
from cam.jobs.runner import Trigger
from cam.jobs.summary import counts_text, duration_text
from cam.models import Campaign


class Command(BaseCommand):
    # A door over job_request, like the API and the admin: the job's rules and refusals are theirs. It runs
    # in the foreground, where no web request's timeout can cut a long job short.
    help = ("Run a CAM job now and print its result. Exit status 1 when the job failed, when the job refuses "
            "the request, or when a run it would overlap is going on.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", help=f"One of: {', '.join(job_names())}.")
        parser.add_argument("--campaign", type=int, help="Campaign id (default: every active campaign).")
        parser.add_argument("--slot", help="The scheduled slot, an ISO date-time (default: now).")
        parser.add_argument("--force", action="store_true", help="Run even if the slot already ran.")
        parser.add_argument("--max-leads", type=int, help="harvest: create at most this many leads per campaign.")

    def handle(self, *args, **options) -> None:
        campaign = None
        if options["campaign"] is not None:
            campaign = Campaign.objects.filter(pk=options["campaign"]).first()
            if campaign is None:
                raise CommandError(f"No campaign with id {options['campaign']}.")
        slot = None
        if options["slot"]:
            slot = parse_datetime(options["slot"])
            if slot is None:
                raise CommandError(f"--slot {options['slot']!r} is not an ISO date-time such as 2026-11-22T02:00Z.")
        params = {}
        if options["max_leads"] is not None:
            if options["max_leads"] < 1:
                raise CommandError("--max-leads must be at least 1.")
            params["max_leads"] = options["max_leads"]
        try:
            outcome = job_request(options["job"], where="foreground", trigger=Trigger.COMMAND, campaign=campaign,
                                  scheduled_for=slot, force=options["force"], params=params)
        except (UnknownJob, JobRefused) as exc:
            raise CommandError(str(exc)) from None
        if outcome.busy:
            raise CommandError(outcome.busy_message)
        result = outcome.result
        assert result is not None  # run in the foreground, and not refused as busy
        style = self.style.SUCCESS if result.ok else self.style.ERROR
        self.stdout.write(style(f"{result.job}: {result.status}") + f"  ({result.execution_id})")
        if result.reason:
            self.stdout.write(f"reason: {result.reason}")
        if result.counts:
            # In words for whoever reads it, and the exact JSON for whatever parses it.
            self.stdout.write(f"did:    {counts_text(result.counts) or 'nothing'}")
            self.stdout.write(f"counts: {json.dumps(result.counts, ensure_ascii=False)}")
        if result.duration_seconds is not None:
            self.stdout.write(f"took:   {duration_text(result.duration_seconds)}")
        if result.error:
            self.stderr.write(f"error:  {result.error}")
        if not result.ok:
            raise SystemExit(1)
