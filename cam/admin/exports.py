"""CSV downloads from the admin, safe to open in a spreadsheet.

A lead's name or company comes from outside (a harvested API, an imported file, a reply), so a cell
such as ``=HYPERLINK("http://…")`` or ``@cmd|' /C calc'!A0`` would run as a formula in Excel,
LibreOffice or Google Sheets. Every cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is written with a leading ``'``, which spreadsheets read as "this is text"
(OWASP's advice). django-import-export's own setting strips a single leading ``=`` only, which
turns ``==HYPERLINK(…)`` into a live formula; it is off, and this format does the escaping.

Plain numbers (``-5``, ``+3.5``) are left as they are: they are not formulas, and a score stays a
number in the sheet.
"""

from __future__ import annotations

import re

import tablib
from import_export.formats import base_formats

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def spreadsheet_safe(value):
    """``value`` as a spreadsheet shows it but never evaluates it."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeCsv(base_formats.CSV):
    """import-export's CSV format, every cell (headers included) passed through ``spreadsheet_safe``."""

    def export_data(self, dataset, **kwargs):
        safe = tablib.Dataset(*([spreadsheet_safe(cell) for cell in row] for row in dataset),
                              headers=[spreadsheet_safe(header) for header in dataset.headers or []] or None)
        return safe.export(self.get_title(), **kwargs)
