"""API keys from the command line: create (the key is printed once), list, revoke.

    manage.py cam_api_key create "reporting" --read-only --expires 2027-01-31
    manage.py cam_api_key list
    manage.py cam_api_key revoke reporting      # or its prefix

There is no command to change a key: its rights and expiry are fixed when it is created (see
``cam.api_keys``); for others, create a new key and revoke the old one.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cam.api_keys import NAME_MAX_LENGTH, api_key_create
from cam.models import CamAPIKey


def parse_expiry(value: str) -> dt.datetime:
    """A date (the key works until the end of that day, server time) or an ISO date-time."""
    value = value.strip()
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:
        day = moment = None
    if day is None and moment is None:
        raise CommandError(f"--expires {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM].")
    if moment is None:
        assert day is not None  # one of the two was read
        moment = dt.datetime.combine(day, dt.time.max)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    if moment <= timezone.now():
        raise CommandError(f"--expires {value!r} is in the past: the key would never work.")
    return moment


class Command(BaseCommand):
    help = "Create, list and revoke API keys for /api/cam/ (a new key is printed once and never again)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = actions.add_parser("create", help="Create a key and print it once.")
        create.add_argument("name", help=f"A unique name for the key (at most {NAME_MAX_LENGTH} characters).")
        create.add_argument("--read-only", action="store_true", help="The key may only read (GET), not write or "
                                                                     "run jobs.")
        create.add_argument("--expires", metavar="DATE", help="Refuse the key after this date (YYYY-MM-DD, the end "
                                                             "of that day) or date-time (ISO 8601).")
        actions.add_parser("list", help="List keys: name, prefix, rights, state, created (never the key).")
        revoke = actions.add_parser("revoke", help="Revoke a key by its prefix or its name (cannot be undone).")
        revoke.add_argument("key", metavar="PREFIX_OR_NAME")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, *, name: str, read_only: bool, expires: str | None, **_) -> None:
        expiry = parse_expiry(expires) if expires else None
        try:
            api_key, key = api_key_create(name=name, read_only=read_only, expiry_date=expiry)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        name = api_key.name
        rights = "read-only" if read_only else "full"
        until = f", expires {api_key.expiry_date.isoformat()}" if api_key.expiry_date else ""
        self.stdout.write(f"Created {rights} API key {name!r} (prefix {api_key.prefix}{until}):\n\n{key}\n\n"
                          "Store it now: it is kept hashed and will not be shown again. "
                          "Send it as `Authorization: Api-Key <key>`.")

    def _list(self, **_) -> None:
        keys = list(CamAPIKey.objects.order_by("created"))
        if not keys:
            self.stdout.write("No API keys. Create one with `.venv/bin/python manage.py cam_api_key create NAME`.")
            return
        rows = [("NAME", "PREFIX", "RIGHTS", "STATE", "CREATED", "EXPIRES")]
        for key in keys:
            state = "revoked" if key.revoked else "expired" if key.has_expired else "active"
            rows.append((key.name, key.prefix, "read-only" if key.read_only else "full", state,
                         key.created.isoformat(timespec="seconds"),
                         key.expiry_date.isoformat(timespec="seconds") if key.expiry_date else "never"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def _revoke(self, *, key: str, **_) -> None:
        wanted = key.strip()
        with transaction.atomic():
            matches = list(CamAPIKey.objects.select_for_update().filter(prefix=wanted))
            if not matches:
                matches = list(CamAPIKey.objects.select_for_update().filter(name=wanted))
            if not matches:
                raise CommandError(f"No API key has the prefix or name {wanted!r} (see `cam_api_key list`).")
            if len(matches) > 1:
                prefixes = ", ".join(sorted(match.prefix for match in matches))
                raise CommandError(f"{len(matches)} API keys are named {wanted!r}: revoke one by its prefix "
                                   f"({prefixes}).")
            api_key = matches[0]
            if api_key.revoked:
                self.stdout.write(f"API key {api_key.name!r} (prefix {api_key.prefix}) was already revoked.")
                return
            api_key.revoked = True
            api_key.save(update_fields=["revoked"])
        self.stdout.write(f"Revoked API key {api_key.name!r} (prefix {api_key.prefix}): requests with it are "
                          "refused from now on.")
