"""The OpenAPI schema: valid with no warning, served to key holders and staff with its docs (no CDN),
and every operation it describes survives generated requests without a 5xx or an undocumented answer."""

from __future__ import annotations

import io
import json
import re

import pytest
import requests
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aicmo_site.wsgi import application
from tests.api.conftest import client_with_key
from tests.factories import (
    CampaignFactory,
    HumanAlertLogFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
    SuppressionFactory,
    UserFactory,
    WorkerHeartbeatFactory,
)


def test_the_schema_validates_with_no_warning_or_error(tmp_path):
    # --fail-on-warn turns any warning (an undocumented view, an unresolvable type, an enum name
    # collision) into a failure; --validate checks the result against the OpenAPI 3 specification.
    out, err = io.StringIO(), io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"),
                 stdout=out, stderr=err)
    assert "Warning" not in err.getvalue() + out.getvalue()
    text = (tmp_path / "schema.yml").read_text()
    assert text.startswith("openapi: 3.")
    assert "/api/cam/" in text


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_need_a_key_or_staff(anon_api, client, url):
    assert anon_api.get(url).status_code == 401
    client.force_login(UserFactory(is_staff=False))
    assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_the_schema_is_served_to_key_holders_and_staff(read_api, client):
    response = read_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "Authorization"
    assert all(path.startswith("/api/cam/") for path in schema["paths"])
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_the_docs_load_their_files_from_this_site_not_a_cdn(client, live_server):
    client.force_login(UserFactory(is_staff=True))
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "a file comes from another site"
    assert "cdn" not in html.lower()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    static = [asset for asset in assets if asset.startswith("/static/")]
    assert any("drf_spectacular_sidecar" in asset and asset.endswith(".js") for asset in static), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        if asset.startswith("/static/"):
            # Static files are served by the site's server (whitenoise in production, from collectstatic).
            fetched = requests.get(f"{live_server.url}{asset}", timeout=10)
            assert fetched.status_code == 200, asset
            assert fetched.content, asset
        else:
            assert client.get(asset).status_code == 200, asset


# --- Schemathesis over the live schema ----------------------------------------------------------------


def generated_schema() -> dict:
    """The document /api/schema/ serves, built by the same generator. Test items are made from it at
    collection, when no database (so no key) exists yet; ``test_the_tested_schema_is_the_served_one``
    proves it equals what the site serves."""
    generator = SpectacularAPIView.generator_class(api_version=None)
    return json.loads(OpenApiJsonRenderer().render(generator.get_schema(request=None, public=True)))


@pytest.fixture
def in_process_wsgi():
    """Schemathesis calls the WSGI application directly; like Django's test client, keep the request
    cycle from closing the test's database connection (and with it the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def full_key(db, settings, in_process_wsgi) -> str:
    # Generated requests come fast: rates far above what the test sends, so no 429 hides a real answer.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {scope: "100000/min"
                                                          for scope in ("cam_read", "cam_write", "cam_jobs")}}
    return client_with_key(name="schemathesis")._credentials["HTTP_AUTHORIZATION"]


@pytest.fixture
def some_of_everything(db):
    """A few rows behind the small ids generated requests favour, so reads, updates and actions also
    reach their success paths, not only their 404s."""
    mailbox = MailboxFactory()
    for _ in range(3):
        campaign = CampaignFactory()
        campaign.mailboxes.add(mailbox)
        step = SequenceStepFactory(campaign=campaign, position=1)
        lead = LeadFactory(campaign=campaign, mailbox=mailbox)
        email = OutboundEmailFactory(lead=lead, step=step, campaign=campaign, mailbox=mailbox)
        InboundEmailFactory(mailbox=mailbox, lead=lead, outbound_email=email)
        SuppressionFactory()
        HumanAlertLogFactory(campaign=campaign)
        WorkerHeartbeatFactory()


def test_the_tested_schema_is_the_served_one(full_key, in_process_wsgi):
    served = schemathesis.openapi.from_wsgi("/api/schema/?format=json", in_process_wsgi,
                                            headers={"Authorization": full_key})
    assert served.raw_schema == generated_schema()
    assert served.raw_schema["paths"], "the API has no operations"


schema = schemathesis.openapi.from_dict(generated_schema())
schema.app = application


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(case, full_key, some_of_everything):
    case.call_and_validate(
        headers={"Authorization": full_key},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance],
    )


def test_health_documents_only_the_answers_it_can_give():
    operations = generated_schema()["paths"]
    assert sorted(operations["/api/cam/health/"]["get"]["responses"]) == ["200", "503"]
    # No parameter and not a list: no 400 and no 404; but a key is needed and it is throttled.
    assert sorted(operations["/api/cam/metrics/"]["get"]["responses"]) == ["200", "401", "403", "429"]
    assert {"400", "401", "403", "404", "429"} <= set(operations["/api/cam/leads/"]["get"]["responses"])


def test_request_bodies_refuse_unknown_fields_and_responses_do_not_say_so():
    schema = generated_schema()
    components = schema["components"]["schemas"]
    bodies = {operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
              for operations in schema["paths"].values() for operation in operations.values()
              if "requestBody" in operation}
    assert {"CampaignRequest", "PatchedCampaignRequest", "LeadInputRequest", "LeadBulkInputRequest"} <= bodies
    for name in bodies:
        assert components[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in components["Campaign"]
    assert "additionalProperties" not in components["Lead"]


def test_every_free_text_a_request_sends_says_it_may_not_hold_nul():
    schema = generated_schema()
    unmarked = []

    def visit(where: str, node) -> None:
        if not isinstance(node, dict):
            return
        free_text = node.get("type") == "string" and not {"enum", "format"} & node.keys()
        if free_text and node.get("pattern") != "^[^\\u0000]*$":
            unmarked.append(where)
        for key in ("items", "additionalProperties"):
            visit(f"{where}.{key}", node.get(key))
        for name, child in (node.get("properties") or {}).items():
            visit(f"{where}.{name}", child)

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                visit(f"{method} {path} {parameter['name']}", parameter["schema"])
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            visit(name, component)

    assert unmarked == []
