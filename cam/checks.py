"""Start-up checks (``manage.py check``) for mistakes in the environment a deployment is easy to make."""

from __future__ import annotations

import os

from django.core import checks

RENAMED_SECRETS = {"AICMO_RESEND_API_KEY": "CAM_SECRET_RESEND_API_KEY"}


@checks.register(checks.Tags.security)
def renamed_secret_variables(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A secret still set under a name CAM no longer reads would silently stop whatever used it."""
    return [
        checks.Warning(f"{old} is set but no longer read: secrets are read only from variables starting with "
                       f"CAM_SECRET_.", hint=f"Rename it to {new} (the default of every mailbox's Resend key).",
                       id="cam.W001")
        for old, new in RENAMED_SECRETS.items() if os.environ.get(old)
    ]
