"""Importing one CSV file into a campaign: the service behind ``manage.py cam_import_leads`` (a file on
disk) and the admin's CSV import (an upload)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.core.exceptions import ValidationError
from django.utils import timezone

from cam.models import Campaign, Lead, LeadSource
from cam.pipeline.intake import IntakeProblem, leads_intake
from cam.sources import SourceError
from cam.sources.csv_file import CsvFileSource


class CountingReader:
    """A binary stream that counts the bytes read through it, for progress reports."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.bytes_read += len(data)
        return data


@dataclass(frozen=True)
class ImportReport:
    source: LeadSource
    counts: dict[str, int]
    encoding: str
    # The first problems of each kind (duplicate, suppressed, rejected), by line, in file order.
    problems: list[IntakeProblem]
    # The created and updated leads by line, when the caller asked to keep them.
    leads: dict[int, tuple[str, Lead]]

    @property
    def first_rejections(self) -> list[IntakeProblem]:
        return [problem for problem in self.problems if problem.outcome == "rejected"]


def leads_import_csv(
    *,
    campaign: Campaign,
    path: Path,
    columns: dict[str, str] | None = None,
    max_leads: int | None = None,
    on_progress: Callable[[dict[str, int], int, int], None] | None = None,
    rejections_shown: int = 10,
) -> ImportReport:
    """Import the CSV file at ``path`` into ``campaign`` (see ``leads_import_stream``).

    Raises ``SourceError`` also when there is no file at ``path`` or it cannot be opened.
    """
    path = path.resolve()
    # Checked before the source row is written, so a mistyped name or mapping leaves nothing behind.
    if not path.is_file():
        raise SourceError(f"No file at {path}.")
    config = {"path": str(path), "columns": columns or {}}
    _check_config(config)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with raw:
        return _import(campaign=campaign, stream=raw, name=path.name, config=config, total=path.stat().st_size,
                       max_leads=max_leads, on_progress=on_progress, problems_kept=rejections_shown)


def leads_import_stream(
    *,
    campaign: Campaign,
    stream: BinaryIO,
    name: str,
    columns: dict[str, str] | None = None,
    max_leads: int | None = None,
    problems_kept: int | None = 10,
    leads_kept: int | None = 0,
) -> ImportReport:
    """Import a CSV file given as a binary stream (an upload) named ``name`` into ``campaign``, as
    ``leads_import_csv`` does a file on disk; the admin's import is this call."""
    config = {"uploaded_file": name, "columns": columns or {}}
    _check_config(config)
    return _import(campaign=campaign, stream=stream, name=name, config=config, total=0, max_leads=max_leads,
                   on_progress=None, problems_kept=problems_kept, leads_kept=leads_kept)


def _check_config(config: dict[str, Any]) -> None:
    try:
        CsvFileSource.clean_config(dict(config))
    except ValidationError as exc:
        raise SourceError("; ".join(exc.messages)) from None


def _import(*, campaign: Campaign, stream: BinaryIO, name: str, config: dict[str, Any], total: int,
            max_leads: int | None, on_progress: Callable[[dict[str, int], int, int], None] | None,
            problems_kept: int | None, leads_kept: int | None = 0) -> ImportReport:
    """Every row of the file goes through the lead intake (``cam.pipeline.intake``), with a CSV source named
    after the file as the leads' provenance. A bad row (bad quoting, a line over the size cap, a NUL
    character, an invalid address) is a rejection with its line and never stops the import. Raises
    ``SourceError`` when the file as a whole cannot be read (empty, no email column, a broken header)."""
    # A one-off import: the source is kept for provenance, not harvested again by the daily job
    # (which would re-read the file and overwrite what staff changed since). Staff may enable it.
    source, _ = LeadSource.objects.update_or_create(
        campaign=campaign, name=f"CSV import: {name}"[:200],
        defaults={"kind": LeadSource.Kind.CSV, "config": config},
        create_defaults={"kind": LeadSource.Kind.CSV, "config": config, "enabled": False})
    counting = CountingReader(stream)
    backend = CsvFileSource(config, stream=cast(BinaryIO, counting))  # which only reads it
    try:
        report = leads_intake(
            campaign=campaign, records=backend.records(), map_record=backend.map_record,
            field_positions=backend.field_positions, source=source,
            max_leads=max_leads, problems_kept=problems_kept, leads_kept=leads_kept, overlap=True,
            on_batch=(lambda c: on_progress(c, counting.bytes_read, total)) if on_progress else None)
    except SourceError as exc:
        LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_error=str(exc))
        raise
    LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_harvest_counts=report.counts,
                                                   last_error="")
    return ImportReport(source=source, counts=report.counts, encoding=backend.encoding, problems=report.problems,
                        leads=report.leads)
