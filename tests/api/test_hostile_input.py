"""Hostile bodies sent to every write operation (enumerated from the generated schema): never a 5xx,
always a JSON body. A body that cannot be a request (too deep, too large, not an object, a NUL byte in
a string) is a 4xx; odd values in the declared fields are a 4xx or, where the serializer may take them
(a number as a text, say), an answer like any other."""

from __future__ import annotations

import json
import re

import pytest

from cam.models import SendingDomain
from tests.api.test_schema import generated_schema
from tests.factories import CampaignFactory, InboundEmailFactory, LeadFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db

SCHEMA = generated_schema()
WRITE_METHODS = ("post", "put", "patch")
OPERATIONS = sorted((method, path) for path, operations in SCHEMA["paths"].items()
                    for method in operations if method in WRITE_METHODS)


def body_fields(method: str, path: str) -> list[str]:
    """The names of the fields the operation's body declares."""
    body = SCHEMA["paths"][path][method].get("requestBody")
    if body is None:
        return []
    ref = body["content"]["application/json"]["schema"]["$ref"]
    return sorted(SCHEMA["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {}))


def every_field(value) -> callable:
    return lambda fields: json.dumps({name: value for name in fields} or {"x": value})


DEEP = "[" * 1000 + "]" * 1000
HOSTILE = {
    "deep-array": lambda fields: DEEP,
    "deep-in-a-field": lambda fields: f'{{"{(fields or ["x"])[0]}": {DEEP}}}',
    "array-of-objects": lambda fields: "[{}]",
    "bare-string": lambda fields: '"text"',
    "null": lambda fields: "null",
    "huge-integer": lambda fields: "1" + "0" * 5000,
    "big-integer": lambda fields: "1" + "0" * 400,
    "nul-in-every-field": every_field("a\u0000b"),
    "raw-nul-in-a-string": lambda fields: '{"x": "a\x00b"}',
    "two-megabytes": lambda fields: json.dumps({(fields or ["x"])[0]: "x" * (2 * 1024 * 1024)}),
}
ODD_VALUES = {
    "big-integer-in-every-field": every_field(10**400),
    "fraction-in-every-field": every_field(1.5),
    "nested-list-in-every-field": every_field([[[1]]]),
    "object-in-every-field": every_field({"a": {"b": None}}),
    "negative-in-every-field": every_field(-(2**63) - 1),
}


@pytest.fixture
def path_values() -> dict[str, object]:
    """An existing object for each path parameter, so a body is read rather than a 404 answered first."""
    campaign = CampaignFactory()
    step = SequenceStepFactory(campaign=campaign)
    lead = LeadFactory(campaign=campaign)
    reply = InboundEmailFactory(lead=lead)
    domain = SendingDomain.objects.create(domain="outreach.test")
    return {"campaign": campaign, "step": step, "lead": lead, "reply": reply, "domain": domain}


def concrete(path: str, objects: dict[str, object]) -> str:
    if path.startswith("/api/cam/campaigns/{campaign_pk}/steps/"):
        path = path.replace("{campaign_pk}", str(objects["campaign"].pk)).replace("{id}", str(objects["step"].pk))
    elif path.startswith("/api/cam/campaigns/"):
        path = path.replace("{id}", str(objects["campaign"].pk))
    elif path.startswith("/api/cam/leads/"):
        path = path.replace("{id}", str(objects["lead"].pk))
    elif path.startswith("/api/cam/replies/"):
        path = path.replace("{id}", str(objects["reply"].pk))
    elif path.startswith("/api/cam/jobs/"):
        path = path.replace("{name}", "score")
    elif path.startswith("/api/cam/sending-domains/"):
        path = path.replace("{id}", str(objects["domain"].pk))
    assert not re.search(r"{\w+}", path), f"no value for the parameters of {path}"
    return path


def test_the_hostile_bodies_reach_every_write_operation():
    assert len(OPERATIONS) >= 10
    assert ("post", "/api/cam/leads/bulk/") in OPERATIONS
    assert ("patch", "/api/cam/campaigns/{id}/") in OPERATIONS


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_a_hostile_body_is_a_json_4xx_never_a_5xx(api, path_values, method, path, hostile):
    body = HOSTILE[hostile](body_fields(method, path))

    response = getattr(api, method)(concrete(path, path_values), body, content_type="application/json")

    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert response.json()


@pytest.mark.parametrize("odd", list(ODD_VALUES))
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_odd_values_in_the_fields_are_never_a_5xx(api, path_values, method, path, odd):
    body = ODD_VALUES[odd](body_fields(method, path))

    response = getattr(api, method)(concrete(path, path_values), body, content_type="application/json")

    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert response.json()
