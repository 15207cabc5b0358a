"""A record of a table-shaped source (a CSV file): its values by position, under column names every row shares.

A file of a million rows would otherwise make a dictionary per row, and the intake another for its lead
fields. A ``RowValues`` is a read-only mapping over the row's own list of values; the names, and where
each lead field is read from, are worked out once per file (``Columns``), so the intake can take a
record's fields by position and stage its raw values as they are (``cam.pipeline.lead_insert``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


class Columns:
    """The column names of a source, in order, each once."""

    __slots__ = ("_index", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self._index = {name: position for position, name in enumerate(self.names)}

    def position(self, name: str) -> int | None:
        return self._index.get(name)


class RowValues(Mapping[str, str]):
    """One row: ``cells[i]`` is the value of ``columns.names[i]``. Equal to the dictionary of the same items."""

    __slots__ = ("cells", "columns")

    def __init__(self, columns: Columns, cells: Sequence[str]) -> None:
        self.columns = columns
        self.cells = cells

    def __getitem__(self, name: str) -> str:
        position = self.columns.position(name)
        if position is None:
            raise KeyError(name)
        return self.cells[position]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.columns.position(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns.names)

    def __len__(self) -> int:
        return len(self.columns.names)

    def __repr__(self) -> str:
        return f"RowValues({dict(self)!r})"
