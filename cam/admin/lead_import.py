"""CSV import and export of leads for the admin, on django-import-export.

An import adds leads to one campaign, chosen on the form. Every line of the file either becomes a
lead or is rejected with its line number and the reason; the good lines are imported even when
others are bad — including lines the database could not store (a NUL character) and lines the CSV
reader gives up on (an unclosed quote, a line over the size cap; see ``cam.sources.csv_rows``).
``LeadImportResource.before_import`` judges the whole file in one pass (a constant number of
queries), ``import_row`` lets the accepted rows through and skips the rest, and the rejections
travel to the preview page and the success message on the ``LeadImportResult``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tablib
from django import forms
from import_export import resources
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.results import Result, RowResult

from cam.models import Campaign, Lead
from cam.pipeline.records import CleanRecord, RejectedRecord, clean_record, unstorable_reason
from cam.sources.base import LEAD_FIELDS
from cam.sources.csv_rows import UTF8, WINDOWS_1252, CsvRows
from cam.suppressions import suppressed_addresses

LEAD_COLUMNS = LEAD_FIELDS
REQUIRED_COLUMNS = ("email",)

# Columns the upload format adds to every row. "#" cannot start a lead column, so they never clash.
LINE = "#line"
ERROR = "#error"

# Addresses looked up per query when checking existing leads and suppressions (SQLite caps parameters).
LOOKUP_CHUNK = 2000


class CsvUploadDataset(tablib.Dataset):
    """A dataset read from an upload, remembering which encoding the file was read in."""

    encoding: str = UTF8


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
        for row in rows:
            dataset.append([row.line, row.error, *(row.values.get(name, "") for name in rows.header)])
        return dataset


class MissingColumns(ValueError):
    """The file lacks a required column: nothing in it is imported."""

    def __init__(self, missing: Iterable[str], found: Iterable[str]) -> None:
        missing, found = list(missing), list(found)
        super().__init__(
            f"The file has no {', '.join(missing)} column, which is required; nothing was imported. "
            f"Columns found: {', '.join(found) or 'none'}."
        )


@dataclass(frozen=True, order=True)
class Rejection:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.reason}"


class LeadImportResult(Result):
    """import-export's result, plus what CAM tells staff: the rejected lines and the encoding used."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.campaign: Campaign | None = None
        self.rejections: list[Rejection] = []
        self.encoding = UTF8

    @property
    def created(self) -> int:
        return self.totals[RowResult.IMPORT_TYPE_NEW]

    @property
    def encoding_note(self) -> str:
        if self.encoding == WINDOWS_1252:
            return ("The file is not UTF-8, so it was read as Windows-1252 (Latin-1). "
                    "Check that accented letters look right.")
        return ""


@dataclass(frozen=True)
class _Accepted:
    clean: CleanRecord
    raw: dict[str, Any]


class LeadImportResource(resources.ModelResource):
    """Adds the rows of a CSV file to ``campaign`` as new leads; never changes an existing lead."""

    class Meta:
        model = Lead
        fields = LEAD_COLUMNS
        import_order = LEAD_COLUMNS
        # An import only adds: even a file with an "id" column cannot reach an existing lead.
        force_init_instance = True
        use_bulk = True
        # Rejected lines are listed by line number with their reason, not as blank preview rows.
        report_skipped = False

    def __init__(self, *, campaign: Campaign | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.campaign = campaign
        self.rejections: list[Rejection] = []
        self._accepted: dict[int, _Accepted] = {}

    @classmethod
    def get_result_class(cls) -> type[LeadImportResult]:
        return LeadImportResult

    def before_import(self, dataset: tablib.Dataset, **kwargs) -> None:
        if self.campaign is None:
            raise ValueError("Choose the campaign the leads are imported into.")
        headers = list(dataset.headers or [])
        missing = [column for column in REQUIRED_COLUMNS if column not in headers]
        if missing:
            found = [name for name in headers if not name.startswith("#")]
            # An emptied dataset makes import-export look at no row at all.
            dataset.wipe()
            raise MissingColumns(missing, found)
        self._judge(dataset.dict)

    def _judge(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Decide every row up front: rejected with a reason, or accepted and remembered by line."""
        first_line: dict[str, int] = {}
        for row in rows:
            line = row[LINE]
            raw = {k: v for k, v in row.items() if not k.startswith("#")}
            try:
                if row[ERROR]:
                    raise RejectedRecord(row[ERROR])
                # The whole row is kept as raw_data, so all of it must be storable, not only the lead's fields.
                unstorable = unstorable_reason(raw)
                if unstorable:
                    raise RejectedRecord(unstorable)
                clean = clean_record({name: row[name] for name in LEAD_COLUMNS if name in row})
            except RejectedRecord as exc:
                self._reject(line, str(exc))
                continue
            email = clean.address.email
            if email in first_line:
                self._reject(line, f"duplicate: {email} is already on line {first_line[email]}")
                continue
            first_line[email] = line
            self._accepted[line] = _Accepted(clean, raw)

        for line, reason in self._conflicts_in_database(first_line):
            del self._accepted[line]
            self._reject(line, reason)
        self.rejections.sort()

    def _conflicts_in_database(self, first_line: Mapping[str, int]) -> Iterator[tuple[int, str]]:
        """Accepted addresses that are already leads of the campaign, or suppressed."""
        emails = list(first_line)
        for start in range(0, len(emails), LOOKUP_CHUNK):
            chunk = emails[start:start + LOOKUP_CHUNK]
            existing = set(Lead.objects.filter(campaign=self.campaign, email__in=chunk)
                           .values_list("email", flat=True))
            suppressed = suppressed_addresses(chunk)
            for email in chunk:
                if email in existing:
                    yield first_line[email], f"duplicate: {email} is already a lead in this campaign"
                elif email in suppressed:
                    yield first_line[email], suppressed[email]

    def _reject(self, line: int, reason: str) -> None:
        self.rejections.append(Rejection(line, reason))

    def import_row(self, row, instance_loader, **kwargs) -> RowResult:
        accepted = self._accepted.get(row[LINE])
        if accepted is None:
            row_result = self.get_row_result_class()()
            row_result.import_type = RowResult.IMPORT_TYPE_SKIP
            return row_result
        cleaned = {**row, **accepted.clean.fields, "email": accepted.clean.address.email}
        return super().import_row(cleaned, instance_loader, **kwargs)

    def import_instance(self, instance: Lead, row, **kwargs) -> None:
        super().import_instance(instance, row, **kwargs)
        accepted = self._accepted[row[LINE]]
        assert self.campaign is not None  # before_import refused the import without one
        instance.campaign = self.campaign
        instance.is_role_account = accepted.clean.address.is_role_account
        instance.is_free_mail = accepted.clean.address.is_free_mail
        instance.raw_data = accepted.raw

    def after_import(self, dataset: tablib.Dataset, result: LeadImportResult, **kwargs) -> None:
        # ModelResource.after_import resets the id sequence, which matters only when a file supplies
        # ids. This import never does, and a reset while the harvest inserts leads could reuse an id.
        result.campaign = self.campaign
        result.rejections = list(self.rejections)
        result.encoding = getattr(dataset, "encoding", UTF8)


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
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(),
                                      help_text="Every lead in the file is added to this campaign.")
    field_order = ["resource", "campaign", "import_file", "format"]


class LeadConfirmImportForm(ConfirmImportForm):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(), widget=forms.HiddenInput)
