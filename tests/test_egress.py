"""Requests to staff-chosen URLs reach the public internet only, unless AICMO_CAM_EGRESS_ALLOW says otherwise."""

from __future__ import annotations

import ipaddress

import pytest
import requests

from cam.egress import EgressRefused, address_kind, check_url, egress_session, status_text
from tests.servers.http import Reply


def refusal(url: str) -> str:
    with pytest.raises(EgressRefused) as caught, egress_session() as session:
        session.get(url, timeout=2)
    return str(caught.value)


@pytest.mark.parametrize(("host", "refused"), [
    ("127.0.0.1", "127.0.0.1 is a loopback"), ("127.8.9.10", "127.8.9.10 is a loopback"),
    ("[::1]", "::1 is a loopback"),
    ("10.0.0.5", "10.0.0.5 is a private"), ("172.16.3.4", "172.16.3.4 is a private"),
    ("192.168.1.1", "192.168.1.1 is a private"), ("[fd12::1]", "fd12::1 is a private"),
    ("169.254.10.10", "169.254.10.10 is a link-local"), ("[fe80::1]", "fe80::1 is a link-local"),
    ("100.64.0.1", "100.64.0.1 is a carrier-grade NAT"),
    ("224.0.0.1", "224.0.0.1 is a multicast"), ("[ff02::1]", "ff02::1 is a multicast"),
    ("0.0.0.0", "0.0.0.0 is an unspecified"), ("[::]", ":: is an unspecified"),
    ("240.0.0.1", "240.0.0.1 is a reserved"), ("255.255.255.255", "255.255.255.255 is a reserved"),
    ("198.18.0.1", "198.18.0.1 is a reserved"),
    # IPv4 written inside IPv6 reaches the IPv4 address: IPv4-mapped, 6to4 and NAT64.
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1 (127.0.0.1) is a loopback"),
    ("[::ffff:10.0.0.5]", "::ffff:a00:5 (10.0.0.5) is a private"),
    ("[2002:a00:5::1]", "2002:a00:5::1 (10.0.0.5) is a private"),
])
def test_it_refuses_an_address_off_the_public_internet_before_connecting(no_egress_allowed, dns, host, refused):
    message = refusal(f"http://{host}:8080/contacts")

    address = str(ipaddress.ip_address(host.strip("[]")))
    assert message == (f"refused: {refused} address; add {address} to AICMO_CAM_EGRESS_ALLOW if this internal "
                       f"destination is deliberate")
    assert dns.lookups == []


def test_it_refuses_loopback_with_the_allow_list_empty_and_nothing_arrives(no_egress_allowed, http_server):
    http_server.reply("/contacts", Reply(200, []))

    assert refusal(http_server.url("/contacts")) == (
        "refused: 127.0.0.1 is a loopback address; add 127.0.0.1 to AICMO_CAM_EGRESS_ALLOW if this internal "
        "destination is deliberate")
    assert http_server.requests == []


def test_it_refuses_a_host_name_that_resolves_to_a_private_address(no_egress_allowed, dns):
    dns["crm.example.test"] = ["10.0.0.5"]

    assert refusal("https://crm.example.test/api/contacts") == (
        "refused: crm.example.test resolves to 10.0.0.5, a private address; add crm.example.test to "
        "AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate")
    assert dns.lookups == ["crm.example.test"]


def test_it_refuses_a_host_name_when_any_of_its_addresses_is_refused(no_egress_allowed, dns):
    # Which answer a connection tries first must not decide whether an internal address is reached.
    dns["crm.example.test"] = ["93.184.215.14", "127.0.0.1"]

    assert refusal("http://crm.example.test/").startswith("refused: crm.example.test resolves to 127.0.0.1, "
                                                          "a loopback address")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/",
                                 "http://metadata.google.internal/computeMetadata/v1/",
                                 "http://[::ffff:169.254.169.254]/latest/", "http://[64:ff9b::a9fe:a9fe]/latest/",
                                 "http://instance-data.test/latest/"])
def test_it_refuses_cloud_metadata_even_when_the_allow_list_covers_it(settings, dns, url):
    settings.AICMO_CAM_EGRESS_ALLOW = ["169.254.0.0/16", "fd00::/8", "::ffff:0:0/96", "metadata.google.internal",
                                       "instance-data.test"]
    dns["instance-data.test"] = ["169.254.169.254"]

    assert refusal(url).endswith("which is never allowed")


def test_an_allowed_host_name_is_reached_at_the_address_that_was_checked(settings, dns, http_server):
    settings.AICMO_CAM_EGRESS_ALLOW = ["crm.internal.test"]
    dns["crm.internal.test"] = ["127.0.0.1"]
    http_server.reply("/contacts", Reply(200, [{"email": "anna@acme-gmbh.de"}]))
    port = http_server.url().rsplit(":", 1)[1].strip("/")

    with egress_session() as session:
        response = session.get(f"http://crm.internal.test:{port}/contacts", timeout=2)

    assert response.json() == [{"email": "anna@acme-gmbh.de"}]
    (request,) = http_server.requests
    assert request.headers["host"] == f"crm.internal.test:{port}"  # the name, not the address it was sent to
    assert dns.lookups == ["crm.internal.test"]  # resolved once: the check and the connection share the answer


@pytest.mark.parametrize("allowed", [["127.0.0.0/8"], ["127.0.0.1"], [".internal.test"], ["crm.internal.test."]])
def test_the_allow_list_takes_ranges_addresses_host_names_and_domains(settings, dns, http_server, allowed):
    settings.AICMO_CAM_EGRESS_ALLOW = allowed
    dns["crm.internal.test"] = ["127.0.0.1"]
    http_server.reply("/contacts", Reply(200, []))
    port = http_server.url().rsplit(":", 1)[1].strip("/")

    with egress_session() as session:
        assert session.get(f"http://crm.internal.test:{port}/contacts", timeout=2).status_code == 200


def test_a_domain_in_the_allow_list_does_not_allow_a_name_that_only_ends_like_it(settings, dns):
    settings.AICMO_CAM_EGRESS_ALLOW = [".internal.test"]
    dns["evilinternal.test"] = ["10.0.0.5"]

    assert refusal("http://evilinternal.test/").startswith("refused: evilinternal.test resolves to 10.0.0.5")


def test_it_checks_every_redirect_hop(settings, dns, http_server):
    settings.AICMO_CAM_EGRESS_ALLOW = ["crm.internal.test"]
    dns["crm.internal.test"] = ["127.0.0.1"]
    port = http_server.url().rsplit(":", 1)[1].strip("/")
    http_server.reply("/contacts", Reply(302, headers={"Location": f"http://127.0.0.1:{port}/admin"}))
    http_server.reply("/admin", Reply(200, {"secret": "sk_live_do_not_leak"}))

    message = refusal(f"http://crm.internal.test:{port}/contacts")

    assert message.startswith("refused: 127.0.0.1 is a loopback address")
    assert [request.path for request in http_server.requests] == ["/contacts"]


def test_it_refuses_a_redirect_to_cloud_metadata(settings, http_server):
    http_server.reply("/contacts", Reply(301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))

    assert refusal(http_server.url("/contacts")) == ("refused: 169.254.169.254 is a cloud metadata address, "
                                                     "which is never allowed")


def test_it_connects_directly_whatever_proxy_the_environment_names(monkeypatch, http_server, dns):
    # A proxy would connect on CAM's behalf to an address CAM never checked.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.example.test:3128")
    dns["proxy.example.test"] = ["127.0.0.1"]
    http_server.reply("/contacts", Reply(200, []))

    with egress_session() as session:
        assert session.get(http_server.url("/contacts"), timeout=2).status_code == 200
    assert dns.lookups == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://crm.example.com/"])
def test_it_has_no_way_to_fetch_other_schemes(url):
    with pytest.raises(requests.exceptions.InvalidSchema), egress_session() as session:
        session.get(url)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://crm.example.com/contacts", "refused: only http:// and https:// URLs with a host may be requested"),
    ("https:///contacts", "refused: only http:// and https:// URLs with a host may be requested"),
    ("http://10.1.2.3/contacts", "refused: 10.1.2.3 is a private address; add 10.1.2.3 to AICMO_CAM_EGRESS_ALLOW "
                                 "if this internal destination is deliberate"),
    ("http://Metadata.Google.Internal./", "refused: metadata.google.internal is a cloud metadata host, which is "
                                          "never allowed"),
])
def test_the_save_time_check_refuses_the_scheme_and_written_addresses(no_egress_allowed, url, message):
    with pytest.raises(EgressRefused) as caught:
        check_url(url)
    assert str(caught.value) == message


def test_the_save_time_check_looks_nothing_up(no_egress_allowed, dns):
    dns["crm.example.test"] = ["10.0.0.5"]

    check_url("https://crm.example.test/api/contacts")  # what it resolves to is checked when connecting
    assert dns.lookups == []


def test_public_addresses_pass():
    for address in ("93.184.215.14", "2606:4700::1111", "64:ff9b::808:808"):
        assert address_kind(ipaddress.ip_address(address)) == ""


@pytest.mark.parametrize(("status", "text"), [(500, "500 Internal Server Error"), (404, "404 Not Found"),
                                              (599, "599")])
def test_an_answer_is_told_by_its_status_and_standard_phrase(status, text):
    assert status_text(status) == text
