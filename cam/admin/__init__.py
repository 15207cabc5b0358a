"""The back office: one module per part of the loop, registered on import."""

from cam.admin import (  # noqa: F401
    api_keys,
    campaigns,
    decisions,
    desk,
    domains,
    leads,
    mail,
    operations,
    snippets,
    theme_lists,
    third_party,
)
