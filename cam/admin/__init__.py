"""The back office: one module per part of the loop, registered on import."""

from cam.admin import api_keys, campaigns, decisions, desk, leads, mail, operations, third_party  # noqa: F401
