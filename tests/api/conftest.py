"""Clients for the REST API: one with a full key, one with a read-only key, one with nothing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cam.models import CamAPIKey


def client_with_key(*, read_only: bool = False, name: str = "") -> APIClient:
    _, key = CamAPIKey.objects.create_key(name=name or ("read key" if read_only else "full key"), read_only=read_only)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def api(db) -> APIClient:
    """A client holding a full API key."""
    return client_with_key()


@pytest.fixture
def read_api(db) -> APIClient:
    """A client holding a read-only API key."""
    return client_with_key(read_only=True)


@pytest.fixture
def anon_api(db) -> APIClient:
    """A client with no credentials at all."""
    return APIClient()
