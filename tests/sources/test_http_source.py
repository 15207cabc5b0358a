"""The HTTP JSON lead source, against a real HTTP server on loopback."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError

from cam.sources import SourceError, SourceRecord, get_backend
from cam.sources.http_json import MAX_RETRY_AFTER_SECONDS, HttpJsonSource
from tests.servers.http import Reply


class Waits(list):
    """Stands in for ``time.sleep``: remembers how long the source would have waited."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


def source(http_server, waits, path="/contacts", **config) -> HttpJsonSource:
    return HttpJsonSource({"url": http_server.url(path), **config}, sleep=waits)


def contacts(*names: str) -> list[dict[str, str]]:
    return [{"email": f"{name}@acme-gmbh.de", "first_name": name.title()} for name in names]


def emails(records: list[SourceRecord]) -> list[str]:
    return [record.data["email"] for record in records]


def test_it_reads_a_plain_list_in_one_request(http_server, waits):
    http_server.reply("/contacts", Reply(200, contacts("anna", "ben")))

    records = list(source(http_server, waits).records())

    assert records == [SourceRecord(line=1, data=contacts("anna")[0]), SourceRecord(line=2, data=contacts("ben")[0])]
    (request,) = http_server.requests
    assert (request.method, request.path, request.headers["accept"]) == ("GET", "/contacts", "application/json")


def test_it_reads_pages_until_an_empty_page(http_server, waits):
    http_server.reply("/contacts", Reply(200, {"data": contacts("anna", "ben")}), Reply(200, {"data": contacts("cem")}),
                      Reply(200, {"data": contacts("dora")}), Reply(200, {"data": []}))
    backend = source(http_server, waits, records_path="data", params={"segment": "dach"},
                     pagination={"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 2})

    records = list(backend.records())

    assert emails(records) == ["anna@acme-gmbh.de", "ben@acme-gmbh.de", "cem@acme-gmbh.de", "dora@acme-gmbh.de"]
    assert [record.line for record in records] == [1, 2, 3, 4]
    assert [request.query for request in http_server.requests] == [
        {"segment": ["dach"], "per_page": ["2"], "page": [str(page)]} for page in (1, 2, 3, 4)]
    assert waits == []


def test_it_follows_a_cursor_until_there_is_none(http_server, waits):
    def page(request):
        cursor = request.param("after")
        if cursor is None:
            return Reply(200, {"results": contacts("anna"), "meta": {"next": "c2"}})
        if cursor == "c2":
            return Reply(200, {"results": contacts("ben"), "meta": {"next": "c3"}})
        return Reply(200, {"results": contacts("cem"), "meta": {"next": None}})

    http_server.reply("/contacts", page)
    backend = source(http_server, waits, records_path="results",
                     pagination={"type": "cursor", "param": "after", "next_path": "meta.next"})

    assert emails(list(backend.records())) == ["anna@acme-gmbh.de", "ben@acme-gmbh.de", "cem@acme-gmbh.de"]
    assert [request.param("after") for request in http_server.requests] == [None, "c2", "c3"]


def test_it_digs_the_records_out_of_a_nested_response(http_server, waits):
    http_server.reply("/contacts", Reply(200, {"response": {"items": [{"contacts": contacts("anna")}]}}))

    records = list(source(http_server, waits, records_path="response.items.0.contacts").records())

    assert emails(records) == ["anna@acme-gmbh.de"]


def test_it_fails_when_there_is_no_list_where_the_records_should_be(http_server, waits):
    http_server.reply("/contacts", Reply(200, {"data": {"total": 0}}))

    with pytest.raises(SourceError, match=r"^No list of records at data\.$"):
        list(source(http_server, waits, records_path="data").records())


def test_it_reports_an_item_that_is_not_an_object_by_its_number(http_server, waits):
    http_server.reply("/contacts", Reply(200, [contacts("anna")[0], "ben@acme-gmbh.de"]))

    records = list(source(http_server, waits).records())

    assert records[1] == SourceRecord(line=2, data={"value": "ben@acme-gmbh.de"}, error="record is not a JSON object")


def test_it_sends_the_token_named_by_an_environment_variable(http_server, waits, monkeypatch):
    monkeypatch.setenv("CAM_SECRET_CRM_TEST", "s3cret")
    http_server.reply("/contacts", Reply(200, []))

    list(source(http_server, waits, auth_env="CAM_SECRET_CRM_TEST").records())
    list(source(http_server, waits, auth_env="CAM_SECRET_CRM_TEST", auth_header="X-Api-Key", auth_scheme="").records())

    first, second = http_server.requests
    assert first.headers["authorization"] == "Bearer s3cret"
    assert second.headers["x-api-key"] == "s3cret"
    assert "authorization" not in second.headers


def test_it_fails_clearly_when_the_token_variable_is_not_set(http_server, waits, monkeypatch):
    monkeypatch.delenv("CAM_SECRET_CRM_TEST", raising=False)
    http_server.reply("/contacts", Reply(200, []))

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits, auth_env="CAM_SECRET_CRM_TEST").records())

    assert str(caught.value) == ("The environment variable CAM_SECRET_CRM_TEST for this lead source's API token "
                                 "is not set.")
    assert http_server.requests == []


def test_it_retries_after_429_as_long_as_retry_after_says(http_server, waits):
    http_server.reply("/contacts", Reply(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
                      Reply(200, contacts("anna")))

    records = list(source(http_server, waits, backoff=5).records())

    assert emails(records) == ["anna@acme-gmbh.de"]
    assert len(http_server.requests) == 2
    assert waits == [0.0]


def test_it_honours_a_longer_retry_after_and_caps_it(http_server, waits):
    http_server.reply("/contacts", Reply(429, headers={"Retry-After": "7"}),
                      Reply(503, headers={"Retry-After": "86400"}), Reply(200, []))

    list(source(http_server, waits).records())

    assert waits == [7.0, MAX_RETRY_AFTER_SECONDS]


def test_it_retries_a_server_error_with_exponential_backoff(http_server, waits):
    http_server.reply("/contacts", Reply(500, "boom"), Reply(502, "bad gateway"), Reply(200, contacts("anna")))

    records = list(source(http_server, waits, backoff=0.5).records())

    assert emails(records) == ["anna@acme-gmbh.de"]
    assert len(http_server.requests) == 3
    assert waits == [0.5, 1.0]


@pytest.mark.parametrize(("status", "phrase"), [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"),
                                               (404, "Not Found"), (422, "Unprocessable Entity")])
def test_it_fails_at_once_on_a_permanent_client_error(http_server, waits, status, phrase):
    http_server.reply("/contacts", Reply(status, {"error": "no"}), Reply(200, []))

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits).records())

    assert str(caught.value) == f'{http_server.url("/contacts")} refused the request (HTTP {status} {phrase}).'
    assert len(http_server.requests) == 1
    assert waits == []


def test_it_gives_up_after_its_retries_naming_the_url_and_the_last_problem(http_server, waits):
    http_server.reply("/contacts", Reply(500, "first"), Reply(503, "still down"))

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits, retries=2, backoff=1).records())

    assert str(caught.value) == (f'{http_server.url("/contacts")} failed after 3 attempts '
                                 f'(last: HTTP 503 Service Unavailable).')
    assert len(http_server.requests) == 3
    assert waits == [1.0, 2.0]


def test_it_gives_up_on_a_server_that_is_not_there(waits):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/contacts"
    backend = HttpJsonSource({"url": url, "retries": 1, "backoff": 0}, sleep=waits)

    with pytest.raises(SourceError) as caught:
        list(backend.records())

    assert str(caught.value).startswith(f"{url} failed after 2 attempts (last: ConnectionError: ")
    assert waits == [0.0]


def test_it_fails_on_a_reply_that_is_not_json(http_server, waits):
    http_server.reply("/contacts", Reply(200, "<html>login</html>"))

    with pytest.raises(SourceError, match="answered with something that is not JSON"):
        list(source(http_server, waits).records())


def test_it_retries_a_request_that_timed_out(http_server, waits):
    http_server.reply("/contacts", Reply(200, contacts("late"), delay=2), Reply(200, contacts("anna")))
    backend = source(http_server, waits)
    backend.config["timeout"] = 0.2  # below what staff may configure, to keep the test fast

    records = list(backend.records())

    assert emails(records) == ["anna@acme-gmbh.de"]
    assert len(http_server.requests) == 2
    assert waits == [1.0]


def test_it_reports_a_timeout_when_every_attempt_times_out(http_server, waits):
    http_server.reply("/contacts", Reply(200, [], delay=2))
    backend = source(http_server, waits, retries=1)
    backend.config["timeout"] = 0.1

    with pytest.raises(SourceError, match=r"failed after 2 attempts \(last: ReadTimeout: .*\)"):
        list(backend.records())


def test_it_reads_no_more_than_max_pages(http_server, waits):
    http_server.reply("/contacts", lambda request: Reply(200, contacts(f"p{request.param('page')}")))

    records = list(source(http_server, waits, max_pages=3, pagination={"type": "page"}).records())

    assert emails(records) == ["p1@acme-gmbh.de", "p2@acme-gmbh.de", "p3@acme-gmbh.de"]
    assert len(http_server.requests) == 3


def test_it_maps_nested_and_differently_named_fields(http_server, waits):
    backend = source(http_server, waits, columns={"email": "Work_Email", "company": "organization.name",
                                                  "country": "organization.address.country"})
    record = {"work_email": "anna@acme-gmbh.de", "Title": "CTO", "email": "private@gmail.com",
              "organization": {"name": "ACME GmbH", "address": {"country": "DE"}}}

    assert backend.map_record(record) == {"email": "anna@acme-gmbh.de", "title": "CTO", "company": "ACME GmbH",
                                          "country": "DE"}


def test_it_leaves_out_a_nested_field_the_record_does_not_have(http_server, waits):
    backend = source(http_server, waits, columns={"company": "organization.name"})

    assert backend.map_record({"email": "anna@acme-gmbh.de", "organization": None}) == {"email": "anna@acme-gmbh.de"}


@pytest.mark.parametrize(("config", "key"), [
    ({"url": "ftp://crm.example.com/contacts"}, "url"),
    ({"url": "https://crm.example.com", "pagination": {"type": "offset"}}, "pagination"),
    ({"url": "https://crm.example.com", "pagination": {"type": "cursor"}}, "pagination"),
    ({"url": "https://crm.example.com", "timeout": 0}, "timeout"),
    ({"url": "https://crm.example.com", "retries": "3"}, "retries"),
    ({"url": "https://crm.example.com", "columns": {"e_mail": "work_email"}}, "columns"),
])
def test_it_refuses_a_bad_configuration_naming_the_key(config, key):
    with pytest.raises(ValidationError) as caught:
        get_backend("http_json", config)

    assert list(caught.value.message_dict) == [key]


def test_it_retries_a_reply_cut_short_by_a_dropped_connection(http_server, waits):
    cut_short = Reply(200, b'[{"email": "an', headers={"Content-Length": "500", "Connection": "close"})
    http_server.reply("/contacts", cut_short, Reply(200, contacts("anna")))

    records = list(source(http_server, waits).records())

    assert emails(records) == ["anna@acme-gmbh.de"]
    assert len(http_server.requests) == 2
    assert waits == [1.0]


def test_it_fails_this_source_on_any_other_request_problem(http_server, waits):
    http_server.reply("/contacts", Reply(302, headers={"Location": "/contacts"}))

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits).records())

    assert str(caught.value).startswith(f'{http_server.url("/contacts")} could not be fetched (TooManyRedirects: ')
    assert waits == []


# --- where it may connect, and what it keeps of an error (cam.egress) ---------------------------------------


def test_it_refuses_a_source_on_loopback_with_the_allow_list_empty(no_egress_allowed, http_server, waits):
    http_server.reply("/contacts", Reply(200, contacts("anna")))

    with pytest.raises(ValidationError) as caught:
        source(http_server, waits)

    assert caught.value.message_dict == {"url": [
        f'{http_server.url("/contacts")}: refused: 127.0.0.1 is a loopback address; add 127.0.0.1 to '
        f'AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.']}
    assert http_server.requests == []


def test_it_refuses_a_host_name_that_resolves_to_a_private_address_when_it_connects(no_egress_allowed, dns, waits):
    dns["crm.example.test"] = ["10.0.0.5"]
    backend = HttpJsonSource({"url": "https://crm.example.test/api/contacts", "retries": 3}, sleep=waits)

    with pytest.raises(SourceError) as caught:
        list(backend.records())

    assert str(caught.value) == (
        "https://crm.example.test/api/contacts: refused: crm.example.test resolves to 10.0.0.5, a private address; "
        "add crm.example.test to AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.")
    assert waits == []  # refused for good, not retried


def test_it_refuses_the_cloud_metadata_address(waits):
    with pytest.raises(ValidationError) as caught:
        HttpJsonSource({"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}, sleep=waits)

    assert caught.value.message_dict["url"][0].endswith(
        "refused: 169.254.169.254 is a cloud metadata address, which is never allowed.")


def test_it_refuses_a_redirect_from_an_allowed_host_to_a_refused_one(settings, dns, http_server, waits):
    settings.AICMO_CAM_EGRESS_ALLOW = ["crm.internal.test"]
    dns["crm.internal.test"] = ["127.0.0.1"]
    port = http_server.url().rsplit(":", 1)[1].strip("/")
    http_server.reply("/contacts", Reply(302, headers={"Location": f"http://127.0.0.1:{port}/internal-admin"}))
    http_server.reply("/internal-admin", Reply(200, contacts("anna")))
    url = f"http://crm.internal.test:{port}/contacts"

    with pytest.raises(SourceError) as caught:
        list(HttpJsonSource({"url": url}, sleep=waits).records())

    assert str(caught.value).startswith(f"{url}: refused: 127.0.0.1 is a loopback address; add 127.0.0.1 to "
                                        f"AICMO_CAM_EGRESS_ALLOW")
    assert [request.path for request in http_server.requests] == ["/contacts"]


def test_it_still_follows_a_redirect_to_an_allowed_host(http_server, waits):
    http_server.reply("/contacts", Reply(301, headers={"Location": http_server.url("/v2/contacts")}))
    http_server.reply("/v2/contacts", Reply(200, contacts("anna")))

    assert emails(list(source(http_server, waits).records())) == ["anna@acme-gmbh.de"]


@pytest.mark.parametrize("status", [401, 500])
def test_it_keeps_no_word_of_an_error_body(http_server, waits, status):
    leak = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    http_server.reply("/contacts", Reply(status, {"error": leak, "config": {"db_password": "hunter2"}}))

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits, retries=1).records())

    assert "wJalrXUtnFEMI" not in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert f"HTTP {status} " in str(caught.value)


def test_it_does_not_quote_a_broken_chunked_answer(http_server, waits):
    # A chunk size line that is not a number: urllib3's error quotes the line, which is part of the body.
    broken = Reply(200, b"token=sk_live_51HqLyjWDarjtT1zdp7dc\r\n", headers={"Transfer-Encoding": "chunked",
                                                                           "Content-Length": ""})
    http_server.reply("/contacts", broken)

    with pytest.raises(SourceError) as caught:
        list(source(http_server, waits, retries=0).records())

    assert "sk_live" not in str(caught.value)


def test_a_redirect_to_another_host_never_carries_the_token_in_any_header(http_server, waits, monkeypatch):
    monkeypatch.setenv("CAM_SECRET_CRM_TEST", "s3cret")
    # The same server under another name: another host to requests, allowed like any loopback address.
    elsewhere = http_server.url("/landing").replace("127.0.0.1", "localhost")
    http_server.reply("/contacts", Reply(302, headers={"Location": elsewhere}))
    http_server.reply("/landing", Reply(200, []))

    list(source(http_server, waits, auth_env="CAM_SECRET_CRM_TEST", auth_header="X-Api-Key",
                auth_scheme="").records())

    first, second = http_server.requests
    assert first.headers["x-api-key"] == "s3cret"
    assert "x-api-key" not in second.headers and second.path.startswith("/landing")
