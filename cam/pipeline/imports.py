"""Importing one CSV file into a campaign: the service behind ``manage.py cam_import_leads``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from django.core.exceptions import ValidationError
from django.utils import timezone

from cam.models import Campaign, HarvestRejection, LeadSource
from cam.pipeline.harvest import harvest_records
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
    first_rejections: list[HarvestRejection]


def leads_import_csv(
    *,
    campaign: Campaign,
    path: Path,
    columns: dict[str, str] | None = None,
    max_leads: int | None = None,
    on_progress: Callable[[dict[str, int], int, int], None] | None = None,
    rejections_shown: int = 10,
) -> ImportReport:
    """Harvest ``path`` into ``campaign`` through a CSV source named after the file (kept for provenance).

    ``on_progress(counts, bytes_read, total_bytes)`` is called after each batch. A bad row (bad quoting,
    a line over the size cap, a NUL character, an invalid address) is a rejection with its line and never
    stops the import. Raises ``SourceError`` when the file as a whole cannot be read (missing, not
    readable, empty, no email column, a broken header) or ``columns`` names an unknown lead field.
    """
    path = path.resolve()
    # Checked before the source row is written, so a mistyped name or mapping leaves nothing behind.
    if not path.is_file():
        raise SourceError(f"No file at {path}.")
    config = {"path": str(path), "columns": columns or {}}
    try:
        CsvFileSource.clean_config(dict(config))
    except ValidationError as exc:
        raise SourceError("; ".join(exc.messages)) from None
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with raw:
        # A one-off import: the source is kept for provenance, not harvested again by the daily job
        # (which would re-read the file and overwrite what staff changed since). Staff may enable it.
        source, _ = LeadSource.objects.update_or_create(
            campaign=campaign, name=f"CSV import: {path.name}"[:200],
            defaults={"kind": LeadSource.Kind.CSV, "config": config},
            create_defaults={"kind": LeadSource.Kind.CSV, "config": config, "enabled": False})
        started = timezone.now()
        total = path.stat().st_size
        counting = CountingReader(raw)
        backend = CsvFileSource(config, stream=cast(BinaryIO, counting))  # which only reads it
        try:
            counts = harvest_records(
                campaign=campaign, records=backend.records(), map_record=backend.map_record, source=source,
                max_leads=max_leads,
                on_batch=(lambda c: on_progress(c, counting.bytes_read, total)) if on_progress else None)
        except SourceError as exc:
            LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_error=str(exc))
            raise
    LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_harvest_counts=counts,
                                                   last_error="")
    first = list(HarvestRejection.objects.filter(source=source, created_at__gte=started)
                 .order_by("line", "pk")[:rejections_shown])
    return ImportReport(source=source, counts=counts, encoding=backend.encoding, first_rejections=first)

