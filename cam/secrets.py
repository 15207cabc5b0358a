"""Secrets named by environment variable.

Tables and source configurations hold the *name* of a variable, never the secret itself; this is
the one place that turns such a name into its value.

Only variables whose names carry the reserved prefix ``CAM_SECRET_`` can be named. Staff choose
where a secret goes (a lead source's URL, a mailbox's SMTP host, a webhook), so without the prefix
anyone allowed to edit such a record could name ``SECRET_KEY`` or ``DATABASE_URL`` and have it sent
to a host of their choosing. CAM's own settings never read a ``CAM_SECRET_`` variable (a test
holds that), so the two sets cannot meet. The name is checked when a record is saved and again
when the secret is read, since a configuration can reach the table by other ways than a form.
"""

from __future__ import annotations

import os
import re

from django.core.exceptions import ValidationError

SECRET_PREFIX = "CAM_SECRET_"
_SECRET_NAME = re.compile(rf"^{SECRET_PREFIX}[A-Za-z0-9_]+$")


class MissingSecret(LookupError):
    """The named variable is not set, or cannot be named; the message says which and what to do."""


def secret_name_problem(name: str) -> str:
    """Why ``name`` cannot name a secret, or "" when it can."""
    if _SECRET_NAME.match(name):
        return ""
    if name.startswith(SECRET_PREFIX) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return (f"{name!r} is not the name of an environment variable: use letters, digits and underscores "
                f"after {SECRET_PREFIX}, and never the secret itself.")
    return (f"Secrets are read only from variables whose names start with {SECRET_PREFIX}: set the secret "
            f"as {SECRET_PREFIX}{name.removeprefix('AICMO_').removeprefix('CAM_')} and name that here.")


def validate_secret_name(value: str) -> None:
    """Model and form validator for fields that name a secret's variable (empty is allowed)."""
    if value and (problem := secret_name_problem(value)):
        raise ValidationError(problem, code="secret_name")


def secret_from_env(name: str, *, purpose: str) -> str:
    """The value of environment variable ``name``; raises ``MissingSecret`` if it is unset, empty or not
    a name that may hold a secret."""
    if name and (problem := secret_name_problem(name)):
        raise MissingSecret(f"The variable {name} named for {purpose} cannot be read. {problem}")
    value = os.environ.get(name, "") if name else ""
    if not value:
        raise MissingSecret(f"The environment variable {name or '(none named)'} for {purpose} is not set.")
    return value
