"""The theme's lists, made cheaper by ``cam.admin.theme_lists``, draw exactly the page the theme draws alone:
with every row's headers made again and with no ``list_sections`` on the model admins. And each page makes its
headers once, however many rows it shows."""

import re
from contextlib import contextmanager

import pytest
from django.urls import reverse
from unfold.admin import ModelAdmin
from unfold.templatetags import unfold_list

from cam.admin import theme_lists
from tests.admin.test_changelist_queries import LISTS

pytestmark = pytest.mark.django_db

# Each request masks the CSRF token anew.
_TOKEN = re.compile(r'(name="csrfmiddlewaretoken" value=|csrfToken: |"csrf_token": )"[^"]+"')


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return _TOKEN.sub(r"\1TOKEN", response.content.decode())


@contextmanager
def theme_alone():
    """The theme's own ``result_headers``, and its model admins without ``list_sections``, for a while."""
    shim, sections = unfold_list.result_headers, ModelAdmin.list_sections
    unfold_list.result_headers = shim.made
    del ModelAdmin.list_sections
    try:
        yield
    finally:
        unfold_list.result_headers, ModelAdmin.list_sections = shim, sections


@pytest.mark.parametrize("model", ["lead", "outboundemail", "inboundemail", "campaign", "jobexecution"])
def test_a_list_is_drawn_as_the_theme_draws_it(admin_client, model):
    LISTS[model][0](12)
    path = reverse(f"admin:cam_{model}_changelist") + "?o=-1"  # sorted by a column: its header's links change
    drawn = page(admin_client, path)
    with theme_alone():
        assert not hasattr(ModelAdmin, "list_sections")
        alone = page(admin_client, path)
    assert drawn == alone
    # The select-all checkbox, in the header row only (job runs are an audit list: no actions).
    assert drawn.count('id="action-toggle"') == (0 if model == "jobexecution" else 1)
    assert drawn.count('data-label=') >= 12  # each row's cells are titled from the headers


def test_the_headers_are_made_once_a_page_whatever_its_rows(admin_client, monkeypatch):
    LISTS["lead"][0](30)
    made, theme = [], unfold_list.result_headers.made

    def counted(cl):
        made.append(cl)
        return theme(cl)

    monkeypatch.setattr(unfold_list, "result_headers", theme_lists.headers_once(counted))
    page(admin_client, reverse("admin:cam_lead_changelist"))
    assert len(made) == 1


def test_installing_twice_wraps_once():
    shim = unfold_list.result_headers
    theme_lists.install()
    assert unfold_list.result_headers is shim
    assert not hasattr(shim.made, "made")
