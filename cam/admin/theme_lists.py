"""Two costs the theme's lists (django-unfold's change list templates) pay on every row, taken away.

- **The column headers, made again for every row.** ``unfold.templatetags.unfold_list.items_for_result``
  calls ``result_headers(cl)`` for each row it draws, only to read each column's title. Making the headers
  renders the select-all checkbox's widget through the template engine, looks up every column's label and
  builds three sort links (query strings) for each sortable column: a page of 100 rows made them 101 times,
  a third of the time the leads list took to render. They depend on the change list alone, which does not
  change while its page is drawn, so each change list now makes them once and every row reads those.
- **``list_sections``, which the templates ask every model admin for and the theme's ``ModelAdmin`` does not
  define.** A missing attribute makes the template engine list the admin's attributes (``dir()``) to tell it
  from one whose property raised, twice a row. The theme's own default (no sections) is given to its class.

Both leave every page exactly as it was: ``tests/admin/test_theme_lists.py`` renders lists with and without
them and compares the HTML. Installed once, when ``cam.admin`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from unfold.admin import ModelAdmin
from unfold.templatetags import unfold_list

_HEADERS = "_cam_result_headers"  # where a change list keeps its headers (its instance dictionary)


def headers_once(made: Callable[[Any], Iterator[dict[str, Any]]]) -> Callable[[Any], Iterator[dict[str, Any]]]:
    """``result_headers`` as ``made`` gives them, made once per change list."""

    def result_headers(cl: Any) -> Iterator[dict[str, Any]]:
        headers = vars(cl).get(_HEADERS)
        if headers is None:
            headers = vars(cl)[_HEADERS] = list(made(cl))
        return iter(headers)

    result_headers.made = made  # type: ignore[attr-defined]  # the theme's own, for tests and for undoing
    return result_headers


def install() -> None:
    if not hasattr(unfold_list.result_headers, "made"):
        unfold_list.result_headers = headers_once(unfold_list.result_headers)
    if not hasattr(ModelAdmin, "list_sections"):
        ModelAdmin.list_sections = ()  # the templates' "no sections"


install()
