"""CAM's own deploy checks (``manage.py check --deploy``, cam/checks.py): development values that would
quietly break a production deployment are reported by id."""

import pytest
from django.core.checks import run_checks


def deploy_check_ids() -> list[str]:
    return sorted(m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("cam."))


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.AICMO_CAM_PUBLIC_URL = "https://cam.example.com"
    settings.AICMO_CAM_POSTAL_ADDRESS = "Example Ltd, 1 High Street, London N1 1AA, UK"
    settings.AICMO_CAM_TRUSTED_PROXY_COUNT = 0
    if hasattr(settings, "SECURE_PROXY_SSL_HEADER"):
        del settings.SECURE_PROXY_SSL_HEADER
    return settings


def test_it_reports_nothing_for_a_well_set_production(production):
    assert deploy_check_ids() == []


@pytest.mark.parametrize(("url", "expected"), [
    ("http://cam.example.com", ["cam.E001"]),
    ("http://127.0.0.1:8000", ["cam.E001", "cam.E002"]),
    ("https://localhost", ["cam.E002"]),
    ("https://cam.localhost", ["cam.E002"]),
    ("https://crm.internal", ["cam.E002"]),
    ("https://10.0.0.5", ["cam.E002"]),
    ("https://192.168.1.20:8443", ["cam.E002"]),
    ("https://[::1]", ["cam.E002"]),
    ("https://[fd12::5]", ["cam.E002"]),
    ("https://169.254.1.1", ["cam.E002"]),
    ("https://0.0.0.0", ["cam.E002"]),
    ("https://203.0.113.7", ["cam.E002"]),  # a documentation range: nobody's site
    ("https://8.8.8.8", []),
    ("https://cam.example.com/", []),
])
def test_a_public_url_that_is_not_https_or_not_public_is_an_error(production, url, expected):
    production.AICMO_CAM_PUBLIC_URL = url

    assert deploy_check_ids() == expected


def test_the_error_names_the_variable_and_the_value(production):
    production.AICMO_CAM_PUBLIC_URL = "http://127.0.0.1:8000"

    messages = [m for m in run_checks(include_deployment_checks=True) if m.id == "cam.E002"]

    assert "AICMO_CAM_PUBLIC_URL='http://127.0.0.1:8000'" in messages[0].msg
    assert "a loopback address" in messages[0].msg


def test_no_postal_address_is_an_error(production):
    production.AICMO_CAM_POSTAL_ADDRESS = ""

    assert deploy_check_ids() == ["cam.E003"]


def test_a_trusted_proxy_header_without_a_proxy_count_is_a_warning(production):
    production.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    assert deploy_check_ids() == ["cam.W002"]
    production.AICMO_CAM_TRUSTED_PROXY_COUNT = 1
    assert deploy_check_ids() == []


def test_development_is_left_alone(settings):
    settings.DEBUG = True
    settings.AICMO_CAM_PUBLIC_URL = "http://127.0.0.1:8000"
    settings.AICMO_CAM_POSTAL_ADDRESS = ""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    assert deploy_check_ids() == []


def test_the_deploy_checks_stay_out_of_an_ordinary_check(production):
    production.AICMO_CAM_POSTAL_ADDRESS = ""

    assert [m.id for m in run_checks() if m.id.startswith("cam.")] == []


def test_production_without_an_encryption_key_is_an_error(production):
    production.AICMO_CAM_ENCRYPTION_KEYS = []

    messages = [m for m in run_checks(include_deployment_checks=True) if m.id == "cam.E004"]

    assert len(messages) == 1
    assert "AICMO_CAM_ENCRYPTION_KEYS is not set" in messages[0].msg
    assert "cam_reencrypt --new-key" in messages[0].hint
