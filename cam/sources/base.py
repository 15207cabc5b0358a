"""The base class every lead source implements, and the registry that picks one by kind."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

# kind → dotted path; a new kind of source is one class and one line here.
SOURCE_BACKENDS: dict[str, str] = {
    "csv": "cam.sources.csv_file.CsvFileSource",
    "http_json": "cam.sources.http_json.HttpJsonSource",
}

# Lead fields a source may fill, and the names a record may use for each when no mapping is given.
LEAD_FIELDS = ("email", "first_name", "last_name", "company", "title", "industry", "country", "company_size",
               "website", "timezone")


class SourceError(Exception):
    """The source as a whole failed (unreachable, misconfigured); its harvest stops, others go on."""


@dataclass(frozen=True)
class SourceRecord:
    """One record as the source gave it. ``line`` is the file line or item number, for staff."""

    line: int | None
    data: Mapping[str, Any]
    error: str = field(default="")


class LeadSourceBackend:
    """Reads one configured source. Subclasses set ``kind`` and implement ``records``."""

    kind: ClassVar[str]

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = self.clean_config(dict(config))

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Validate a configuration; raise ``ValidationError`` naming the bad key. Override to extend."""
        columns = config.get("columns", {})
        if not isinstance(columns, dict) or any(not isinstance(v, str) for v in columns.values()):
            raise ValidationError({"columns": 'Map lead fields to source names, e.g. {"email": "E-Mail"}.'})
        unknown = sorted(set(columns) - set(LEAD_FIELDS))
        if unknown:
            raise ValidationError({"columns": f"Unknown lead field(s): {', '.join(unknown)}. "
                                              f"Known: {', '.join(LEAD_FIELDS)}."})
        return config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """``clean_config`` plus the rules for a configuration staff save (``LeadSource.clean``)."""
        return cls.clean_config(config)

    def records(self) -> Iterator[SourceRecord]:
        raise NotImplementedError

    def map_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The lead fields of one record, through the configured column mapping (names match case-insensitively)."""
        by_name = {str(key).strip().lower(): value for key, value in data.items()}
        columns = self.config.get("columns", {})
        mapped = {}
        for lead_field in LEAD_FIELDS:
            source_name = columns.get(lead_field, lead_field).strip().lower()
            value = by_name.get(source_name)
            if value is not None:
                mapped[lead_field] = value
        return mapped


def backend_class(kind: str) -> type[LeadSourceBackend]:
    try:
        path = SOURCE_BACKENDS[kind]
    except KeyError:
        raise SourceError(f"Unknown source kind {kind!r}; known kinds: {', '.join(sorted(SOURCE_BACKENDS))}.") \
            from None
    return cast(type[LeadSourceBackend], import_string(path))


def get_backend(kind: str, config: Mapping[str, Any]) -> LeadSourceBackend:
    return backend_class(kind)(config)


def config_check(kind: str, config: Any) -> None:
    """Raise ``ValidationError`` (keyed ``config``) when ``config`` is not a valid configuration of ``kind``.

    Run when a source is saved, so a mistake shows on the form rather than at the next harvest."""
    if not isinstance(config, dict):
        raise ValidationError({"config": "The configuration is a JSON object, e.g. {\"url\": \"https://…\"}."})
    try:
        backend_class(kind).check_config(dict(config))
    except SourceError as exc:
        raise ValidationError({"kind": str(exc)}) from None
    except ValidationError as exc:
        problems = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        raise ValidationError({"config": [f"{key}: {message}" if key else message
                                          for key, messages in problems.items() for message in messages]}) from None
