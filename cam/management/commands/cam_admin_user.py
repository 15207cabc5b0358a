"""Make sure someone can log in to the back office (run by `make run`; idempotent).

Like Django's own ``createsuperuser --noinput``, it reads ``DJANGO_SUPERUSER_USERNAME``,
``DJANGO_SUPERUSER_PASSWORD`` and (optionally) ``DJANGO_SUPERUSER_EMAIL`` from the environment.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

DEFAULT_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create or update the superuser named by DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD; "
        "without them, create 'admin' with a random password (printed once) unless a superuser exists."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if username or password:
            if not (username and password):
                missing = "DJANGO_SUPERUSER_PASSWORD" if username else "DJANGO_SUPERUSER_USERNAME"
                raise CommandError(f"{missing} is not set: set both DJANGO_SUPERUSER_USERNAME and "
                                   "DJANGO_SUPERUSER_PASSWORD, or neither.")
            self._ensure_superuser(username, password, os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip())
            return

        User = get_user_model()
        existing = User._default_manager.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            name = existing.get_username()
            self.stdout.write(f"Log in at {self._admin_url()} as {name} (a superuser already exists). "
                              f"Forgot the password? .venv/bin/python manage.py changepassword {name}")
            return

        if User._default_manager.filter(**{User.USERNAME_FIELD: DEFAULT_USERNAME}).exists():
            raise CommandError(f"A user named {DEFAULT_USERNAME!r} exists but is not a superuser; set "
                               "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD to choose the account.")
        password = secrets.token_urlsafe(16)
        User._default_manager.create_superuser(**{User.USERNAME_FIELD: DEFAULT_USERNAME}, email="",
                                               password=password)
        self.stdout.write(self.style.SUCCESS(
            f"Log in at {self._admin_url()} as {DEFAULT_USERNAME} / {password}"
        ))
        self.stdout.write("This password is shown only once; change it with "
                          f".venv/bin/python manage.py changepassword {DEFAULT_USERNAME}")

    @transaction.atomic
    def _ensure_superuser(self, username: str, password: str, email: str) -> None:
        """Create the superuser, or give an existing account of that name this password and full rights."""
        User = get_user_model()
        user = User._default_manager.select_for_update().filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            User._default_manager.create_superuser(**{User.USERNAME_FIELD: username}, email=email,
                                                   password=password)
            verb = "created"
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            if email:
                user.email = email
            user.save()
            verb = "updated"
        self.stdout.write(self.style.SUCCESS(
            f"Superuser {username} {verb} from DJANGO_SUPERUSER_USERNAME/DJANGO_SUPERUSER_PASSWORD. "
            f"Log in at {self._admin_url()} as {username}."
        ))

    def _admin_url(self) -> str:
        return f"{settings.AICMO_CAM_PUBLIC_URL}{reverse('admin:index')}"
