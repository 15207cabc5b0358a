"""`manage.py cam_admin_user`: someone can always log in, and running it again changes nothing."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.factories import SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db

PRINTED_LOGIN = re.compile(r"Log in at http://127\.0\.0\.1:8000/admin/ as admin / (\S+)")


@pytest.fixture(autouse=True)
def no_superuser_environment(monkeypatch, settings):
    settings.AICMO_CAM_PUBLIC_URL = "http://127.0.0.1:8000"
    for name in ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"):
        monkeypatch.delenv(name, raising=False)


def run_command() -> str:
    out = StringIO()
    call_command("cam_admin_user", stdout=out)
    return out.getvalue()


def test_it_creates_admin_with_a_printed_random_password_when_no_superuser_exists():
    output = run_command()

    match = PRINTED_LOGIN.search(output)
    assert match, output
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.check_password(match.group(1))
    assert len(match.group(1)) >= 20


def test_it_gives_each_new_install_a_different_password():
    first = PRINTED_LOGIN.search(run_command()).group(1)
    get_user_model().objects.all().delete()
    second = PRINTED_LOGIN.search(run_command()).group(1)

    assert first != second


def test_it_changes_nothing_when_run_again():
    password = PRINTED_LOGIN.search(run_command()).group(1)

    output = run_command()

    assert ".venv/bin/python manage.py changepassword admin" in output
    assert not PRINTED_LOGIN.search(output)
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["admin"]
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_it_explains_how_to_log_in_when_a_superuser_already_exists():
    SuperuserFactory(username="owner")

    output = run_command()

    assert "Log in at http://127.0.0.1:8000/admin/ as owner" in output
    assert ".venv/bin/python manage.py changepassword owner" in output
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["owner"]


def test_it_creates_the_superuser_named_in_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-chosen-password")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@cam.test")

    output = run_command()

    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff
    assert user.email == "ops@cam.test"
    assert user.check_password("a-long-chosen-password")
    assert "Superuser ops created" in output
    assert "a-long-chosen-password" not in output
    assert not get_user_model().objects.filter(username="admin").exists()


def test_it_resets_the_password_and_rights_of_the_account_named_in_the_environment(monkeypatch):
    UserFactory(username="ops", is_staff=False, is_superuser=False, is_active=False)
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "the-new-password")

    output = run_command()
    run_command()

    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff and user.is_active
    assert user.check_password("the-new-password")
    assert get_user_model().objects.count() == 1
    assert "Superuser ops updated" in output


@pytest.mark.parametrize("name", ["DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"])
def test_it_refuses_only_half_of_the_environment(monkeypatch, name):
    monkeypatch.setenv(name, "something")
    other = ({"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"} - {name}).pop()

    with pytest.raises(CommandError, match=other):
        run_command()

    assert not get_user_model().objects.exists()


def test_it_does_not_take_over_a_plain_user_named_admin():
    UserFactory(username="admin", is_superuser=False)

    with pytest.raises(CommandError, match="not a superuser"):
        run_command()

    assert not get_user_model().objects.filter(is_superuser=True).exists()
