import argparse
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cam.models import Campaign
from cam.pipeline.imports import leads_import_csv
from cam.sources import SourceError

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Import leads from a CSV file into a campaign; bad rows are reported with their line numbers."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--campaign", type=int, required=True, help="Campaign id.")
        parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME",
                            help="Read a lead field from a differently named column, e.g. email=E-Mail.")
        parser.add_argument("--max-leads", type=int, help="Create at most this many leads.")
        parser.add_argument("--show-rejected", type=int, default=10, help="How many rejected lines to list.")
        parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                            help="Show a progress bar (default: when the output is a terminal).")

    def handle(self, *args, **options) -> None:
        campaign = Campaign.objects.filter(pk=options["campaign"]).first()
        if campaign is None:
            raise CommandError(f"No campaign with id {options['campaign']}.")
        columns = {}
        for pair in options["column"]:
            field, sep, name = pair.partition("=")
            if not sep or not field.strip() or not name.strip():
                raise CommandError(f"--column {pair!r} should look like email=E-Mail.")
            columns[field.strip()] = name.strip()
        interactive = self.stdout.isatty() if options["progress"] is None else options["progress"]
        try:
            report = leads_import_csv(
                campaign=campaign, path=options["file"], columns=columns, max_leads=options["max_leads"],
                on_progress=self._progress if interactive else None, rejections_shown=options["show_rejected"])
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        if interactive:
            self.stdout.write("")
        counts = report.counts
        self.stdout.write(self.style.SUCCESS(
            f"{counts['read']} rows read from {options['file']} ({report.encoding}) into “{campaign.name}”: "
            f"{counts['created']} created, {counts['updated']} updated, {counts['duplicate']} duplicate, "
            f"{counts['suppressed']} suppressed, {counts['rejected']} rejected."))
        if report.first_rejections:
            more = counts["rejected"] - len(report.first_rejections)
            self.stdout.write(f"Rejected lines{' (first ' + str(len(report.first_rejections)) + ')' if more else ''}:")
            for rejection in report.first_rejections:
                self.stdout.write(f"  line {rejection.line}: {rejection.reason}")
            if more:
                self.stdout.write(f"  … and {more} more, listed under Harvest rejections in the admin.")

    def _progress(self, counts: dict[str, int], done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(BAR_WIDTH * share)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%}  {counts['read']:,} rows  "
                          f"{counts['created']:,} created  {counts['rejected']:,} rejected", ending="")
        self.stdout.flush()
