"""CSV import and export of leads for the admin, on django-import-export.

An import brings the rows of a file into one campaign, chosen on the form, through the same service
as ``manage.py cam_import_leads`` (``cam.pipeline.imports.leads_import_stream``, over the lead intake
``cam.pipeline.intake``): a new address becomes a lead, an existing lead with new profile values is
updated, an unchanged one, a suppressed one or a repeat of an earlier line is skipped, and a bad line
is rejected with its line number and the reason — also lines the database could not store (a NUL
character) and lines the CSV reader gives up on (an unclosed quote, a line over the size cap; see
``cam.sources.csv_rows``). The good lines are imported even when others are bad. import-export
keeps its forms, preview and confirmation; ``LeadImportResource`` hands the writes to the service.
"""

from __future__ import annotations

import io

import tablib
from django import forms
from import_export import resources
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm
from import_export.results import Result, RowResult
from unfold.contrib.import_export.forms import ImportForm
from unfold.widgets import UnfoldAdminSelectWidget

from cam.models import Campaign, Lead
from cam.pipeline.imports import leads_import_stream
from cam.pipeline.intake import PROBLEM_OUTCOMES, IntakeProblem, empty_counts
from cam.sources import SourceError
from cam.sources.base import LEAD_FIELDS
from cam.sources.csv_rows import UTF8, WINDOWS_1252, CsvRows

LEAD_COLUMNS = LEAD_FIELDS

# Columns the upload format adds to every row. "#" cannot start a lead column, so they never clash.
LINE = "#line"
ERROR = "#error"

# Problem lines of each kind (unchanged, suppressed, rejected) the preview and the message can list.
PROBLEMS_KEPT = 1000


class CsvUploadDataset(tablib.Dataset):
    """An upload as import-export passes it around: the file's bytes, which the import hands to the service
    as they are, and the encoding it is read in. Its rows are not kept: the service streams them from the
    bytes, and a dataset of every cell took several times the file's size in memory (a 41 MB file of
    300,000 rows: 280 MB) and 6 s to read. True when the file has a row after its header, as
    import-export asks before the preview."""

    encoding: str = UTF8
    content: bytes = b""
    has_rows: bool = False

    def __bool__(self) -> bool:
        return self.has_rows


class LeadCsvFormat(base_formats.CSV):
    """CSV handed over as raw bytes, so ``CsvRows`` can decide the encoding and number the lines.

    import-export's own CSV format decodes the whole file with one codec and gives up at the first
    bad byte; this one reports a bad line and imports the rest.
    """

    def is_binary(self) -> bool:
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def create_dataset(self, in_stream: bytes) -> CsvUploadDataset:
        rows = CsvRows(io.BytesIO(in_stream))
        dataset = CsvUploadDataset(headers=[LINE, ERROR, *rows.header])
        dataset.encoding = rows.encoding
        dataset.content = in_stream
        dataset.has_rows = next(iter(rows), None) is not None
        return dataset


class LeadImportResult(Result):
    """import-export's result, built from the intake's report: the counts per outcome, the problem lines
    with their reasons, and the encoding the file was read in."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.campaign: Campaign | None = None
        self.counts: dict[str, int] = empty_counts()
        self.problems: list[IntakeProblem] = []
        self.encoding = UTF8

    @property
    def created(self) -> int:
        return self.counts["created"]

    @property
    def updated(self) -> int:
        return self.counts["updated"]

    @property
    def unchanged(self) -> int:
        return self.counts["duplicate"]

    @property
    def suppressed(self) -> int:
        return self.counts["suppressed"]

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]

    @property
    def problems_left_out(self) -> int:
        return sum(self.counts[outcome] for outcome in PROBLEM_OUTCOMES) - len(self.problems)

    @property
    def encoding_note(self) -> str:
        if self.encoding == WINDOWS_1252:
            return ("The file is not UTF-8, so it was read as Windows-1252 (Latin-1). "
                    "Check that accented letters look right.")
        return ""


class LeadImportResource(resources.ModelResource):
    """Imports a CSV file into ``campaign`` through ``cam.pipeline.imports.leads_import_stream`` — the
    service of ``manage.py cam_import_leads`` — so the admin creates, updates, skips and rejects exactly
    as the command and the harvest do, with the same provenance (a disabled source named after the file).

    The preview is that same import run inside the transaction import-export rolls back after a dry
    run: what staff confirm is what the service decided on their data, not a second set of rules that
    could drift from it. The confirmation runs it again, so leads added meanwhile are judged afresh."""

    class Meta:
        model = Lead
        fields = LEAD_COLUMNS
        import_order = LEAD_COLUMNS

    def __init__(self, *, campaign: Campaign | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.campaign = campaign

    @classmethod
    def get_result_class(cls) -> type[LeadImportResult]:
        return LeadImportResult

    def import_data_inner(self, dataset, dry_run, raise_errors, using_transactions, collect_failed_rows,
                          **kwargs) -> LeadImportResult:
        result = self.get_result_class()()
        result.diff_headers = list(LEAD_COLUMNS)
        result.campaign = self.campaign
        result.encoding = getattr(dataset, "encoding", UTF8)
        try:
            if self.campaign is None:
                raise ValueError("Choose the campaign the leads are imported into.")
            report = leads_import_stream(campaign=self.campaign, stream=io.BytesIO(dataset.content),
                                         name=kwargs.get("file_name") or "upload.csv",
                                         problems_kept=PROBLEMS_KEPT, leads_kept=None)
        except (SourceError, ValueError) as exc:
            self.handle_import_error(result, exc, raise_errors)
            return result
        result.counts, result.problems = report.counts, report.problems
        result.total_rows = report.counts["read"]
        result.totals[RowResult.IMPORT_TYPE_NEW] = report.counts["created"]
        result.totals[RowResult.IMPORT_TYPE_UPDATE] = report.counts["updated"]
        result.totals[RowResult.IMPORT_TYPE_SKIP] = sum(report.counts[o] for o in PROBLEM_OUTCOMES)
        for _line, (outcome, lead) in sorted(report.leads.items()):
            row = self.get_row_result_class()()
            row.import_type = RowResult.IMPORT_TYPE_NEW if outcome == "created" else RowResult.IMPORT_TYPE_UPDATE
            row.diff = [getattr(lead, name) if getattr(lead, name) is not None else "" for name in LEAD_COLUMNS]
            row.instance = lead
            row.add_instance_info(lead)
            result.append_row_result(row)
        return result


class LeadExportResource(resources.ModelResource):
    """The import's columns plus the campaign's name, the status and the score."""

    campaign = Field(attribute="campaign__name", column_name="campaign")

    class Meta:
        model = Lead
        fields = (*LEAD_COLUMNS, "campaign", "status", "score")
        export_order = (*LEAD_COLUMNS, "campaign", "status", "score")

    def filter_export(self, queryset, **kwargs):
        # The campaign's name comes with each lead: one query for the whole export.
        return queryset.select_related("campaign")


class LeadImportForm(ImportForm):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(), widget=UnfoldAdminSelectWidget,
                                      help_text="Every lead in the file is added to this campaign.")
    field_order = ["resource", "campaign", "import_file", "format"]


class LeadConfirmImportForm(ConfirmImportForm):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(), widget=forms.HiddenInput)
