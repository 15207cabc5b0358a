"""A CSV file on disk (or an uploaded stream), read row by row with its line numbers.

Configuration (``LeadSource.config``)::

    {"path": "/srv/cam/imports/trade-fair.csv", "columns": {"email": "E-Mail", "company": "Firma"}}

Column names match loosely ("E-Mail", "e mail" and "e_mail" are one name); UTF-8 with or without a
byte-order mark and Windows-1252/Latin-1 files are read (see ``cam.sources.csv_rows``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError

from cam.sources.base import LEAD_FIELDS, LeadSourceBackend, SourceError, SourceRecord
from cam.sources.csv_rows import CsvFileError, CsvRows, normalise_column_name
from cam.sources.row_values import Columns, RowValues


def import_path_problem(path: str) -> str:
    """Why a source may not read ``path``, or "". Staff name the file, so only the import folders
    (``AICMO_CAM_IMPORT_DIRS``) are open to them: not ``.env``, ``/proc/self/environ`` or a key file,
    whose lines would come back as rejected rows. Links are followed before the check."""
    resolved = Path(path).resolve()
    folders = settings.AICMO_CAM_IMPORT_DIRS
    if any(resolved.is_relative_to(folder) for folder in folders):
        return ""
    return (f"{path} is outside the import folders ({', '.join(str(f) for f in folders) or 'none set'}): "
            f"put the file there, or add its folder to AICMO_CAM_IMPORT_DIRS.")


class CsvFileSource(LeadSourceBackend):
    kind = "csv"

    def __init__(self, config: Mapping[str, Any], *, stream: BinaryIO | None = None) -> None:
        super().__init__(config)
        self.stream = stream
        self.encoding = ""
        self._pairs: list[tuple[str, str]] | None = None
        # For the rows of one file: each lead field with the position of its column, worked out once.
        self._positions: tuple[Columns, list[tuple[str, int]]] | None = None

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        config = super().clean_config(config)
        config["columns"] = {field: normalise_column_name(name) for field, name in config.get("columns", {}).items()}
        return config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        config = super().check_config(config)
        if config.get("path") and (problem := import_path_problem(str(config["path"]))):
            raise ValidationError({"path": problem})
        return config

    def _open(self) -> BinaryIO:
        if self.stream is not None:
            return self.stream
        path = str(self.config.get("path", ""))
        if not path:
            raise ValidationError({"path": "Name the CSV file to read."})
        if problem := import_path_problem(path):
            raise SourceError(problem)
        try:
            return Path(path).open("rb")  # records() closes it when done
        except OSError as exc:
            raise SourceError(f"Cannot open {path}: {exc.strerror}.") from None

    def records(self) -> Iterator[SourceRecord]:
        """The rows of the file; a bad row comes with its ``error``. Raises ``SourceError`` when the file as
        a whole cannot be read (see ``CsvFileError``), or reading it fails (a disk error)."""
        stream = self._open()
        line = 1
        try:
            try:
                rows = CsvRows(stream)
            except CsvFileError as exc:
                raise SourceError(str(exc)) from None
            self.encoding = rows.encoding
            email_column = self.config["columns"].get("email", "email")
            if email_column not in rows.header:
                raise SourceError(f"The file has no {email_column!r} column; its columns are: "
                                  f"{', '.join(rows.header) or '(none)'}.")
            for row in rows:
                line = row.line
                yield SourceRecord(line=row.line, data=row.values, error=row.error)
        except OSError as exc:
            raise SourceError(f"Reading the file failed after line {line}: {exc.strerror or exc}.") from None
        finally:
            if stream is not self.stream:
                stream.close()

    def map_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(data, RowValues):
            cells = data.cells
            return {field: cells[position] for field, position in self.field_positions(data.columns)}
        return {field: data[column] for field, column in self._column_pairs() if column in data}

    def field_positions(self, columns: Columns) -> list[tuple[str, int]]:
        """Each lead field a row under ``columns`` has, with the position of its column: ``map_record`` of a
        ``RowValues`` is ``{field: cells[position]}`` for these."""
        if self._positions is None or self._positions[0] is not columns:
            self._positions = (columns, [(field, position) for field, column in self._column_pairs()
                                         if (position := columns.position(column)) is not None])
        return self._positions[1]

    def _column_pairs(self) -> list[tuple[str, str]]:
        pairs = self._pairs
        if pairs is None:  # each lead field with the column it is read from, worked out once
            columns = self.config["columns"]
            pairs = self._pairs = [(field, columns.get(field, field)) for field in LEAD_FIELDS]
        return pairs
