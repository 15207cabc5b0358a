"""The Content-Security-Policy header (django-csp, settings.CONTENT_SECURITY_POLICY) on the admin, the API
and its docs, and templates that keep to it: no inline script or event handler, a nonce on each <style>.
tests/browser runs the pages in Chromium and checks that nothing is refused."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from cam.outreach.unsubscribe import unsubscribe_url
from tests.api.conftest import client_with_key
from tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {
    "default-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_the_policy(response) -> dict[str, list[str]]:
    policy = policy_of(response)
    for directive, source in REQUIRED.items():
        assert policy.get(directive) == [source], (directive, policy)
    for directive in ("script-src", "default-src"):
        assert "'unsafe-inline'" not in policy.get(directive, []), policy
        assert "'unsafe-eval'" not in policy.get(directive, []), policy
    return policy


def nonce_of(policy: dict[str, list[str]], directive: str) -> str:
    nonces = [source[len("'nonce-"):-1] for source in policy[directive] if source.startswith("'nonce-")]
    assert len(nonces) == 1, policy
    return nonces[0]


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def assert_the_admin_policy(response) -> dict[str, list[str]]:
    """The admin's pages: the site's policy with the theme's two allowances (settings.CONTENT_SECURITY_POLICY_ADMIN)
    — scripts from this site may use eval (Alpine.js), styles may be inline — and still no inline script."""
    policy = policy_of(response)
    for directive, source in REQUIRED.items():
        assert policy.get(directive) == [source], (directive, policy)
    assert policy["script-src"][:1] == ["'self'"] and "'unsafe-eval'" in policy["script-src"], policy
    assert "'unsafe-inline'" not in policy["script-src"], policy
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"], policy
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not EVENT_HANDLER.search(html), EVENT_HANDLER.search(html)
    return policy


def test_the_admin_login_page_and_index_carry_the_admin_policy(client, staff):
    assert_the_admin_policy(client.get("/admin/login/"))
    response = staff.get("/admin/")
    assert response.status_code == 200
    assert_the_admin_policy(response)


@pytest.mark.parametrize("url", ["/admin/dashboard/", "/admin/cam/campaign/", "/admin/cam/lead/",
                                 "/admin/cam/campaign/add/", "/admin/cam/lead/import/"])
def test_admin_pages_run_no_inline_script(staff, url):
    response = staff.get(url)
    assert response.status_code == 200
    assert_the_admin_policy(response)


def test_pages_outside_the_admin_keep_the_strict_policy(client):
    # The theme's allowances stop at the admin's prefix: the unsubscribe page and the API never get them.
    for response in (client.get("/api/cam/health/"), client.get(urlsplit(unsubscribe_url(LeadFactory())).path)):
        header = response.headers["Content-Security-Policy"]
        assert "'unsafe-eval'" not in header and "'unsafe-inline'" not in header.split("style-src-attr")[0], header


def test_api_answers_carry_the_policy_errors_included(client):
    api = client_with_key()
    response = api.get("/api/cam/campaigns/")
    assert response.status_code == 200
    assert_the_policy(response)
    assert_the_policy(client.get("/api/cam/campaigns/"))  # the 401
    missing = api.get("/api/cam/no-such-thing/")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"
    assert_the_policy(missing)


def test_the_api_docs_page_runs_no_inline_script_and_styles_with_its_nonce(staff):
    response = staff.get("/api/docs/")
    assert response.status_code == 200
    policy = assert_the_policy(response)
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attributes for attributes in scripts), scripts
    assert f'<style nonce="{nonce_of(policy, "style-src")}">' in html
    # The start-up script is served by the same view, as JavaScript.
    script_url = re.findall(r'<script src="([^"]+)"', html)[-1]
    start = staff.get(script_url)
    assert start.status_code == 200
    assert start["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in start.content


def test_the_unsubscribe_page_keeps_its_stricter_policy_and_styles_with_its_nonce(client):
    response = client.get(urlsplit(unsubscribe_url(LeadFactory())).path)
    assert response.status_code == 200
    policy = policy_of(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["style-src"] == [f"'nonce-{nonce_of(policy, 'style-src')}'"]
    assert f'<style nonce="{nonce_of(policy, "style-src")}">' in response.content.decode()


def test_the_policy_is_one_settings_block_the_middleware_applies_to_every_answer():
    assert settings.MIDDLEWARE[0] == "csp.middleware.CSPMiddleware"
    assert set(REQUIRED) <= set(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_WITHOUT_NONCE = re.compile(r"<style(?![^>]*\bnonce=)[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize("template", sorted(ROOT.joinpath("templates").rglob("*.html")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_templates_keep_to_the_policy(template):
    text = template.read_text()
    assert not INLINE_SCRIPT.search(text), "an inline script: move it to a file under static/"
    assert not EVENT_HANDLER.search(text), "an inline event handler: attach a listener from a script file"
    assert not STYLE_WITHOUT_NONCE.search(text), 'a <style> without nonce="{{ request.csp_nonce }}"'
