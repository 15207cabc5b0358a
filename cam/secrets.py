"""Secrets named by environment variable.

Tables and source configurations hold the *name* of a variable, never the secret itself; this is
the one place that turns such a name into its value.
"""

from __future__ import annotations

import os


class MissingSecret(LookupError):
    """The named variable is not set; the message names it so an operator can fix the deployment."""


def secret_from_env(name: str, *, purpose: str) -> str:
    """The value of environment variable ``name``; raises ``MissingSecret`` if unset or empty."""
    value = os.environ.get(name, "") if name else ""
    if not value:
        raise MissingSecret(f"The environment variable {name or '(none named)'} for {purpose} is not set.")
    return value
