"""A JSON API read page by page with ``requests``.

Configuration (``LeadSource.config``)::

    {
      "url": "https://crm.example.com/api/contacts",
      "records_path": "data",                  # where the list of records is in each response
      "auth_env": "CAM_SECRET_CRM_TOKEN",       # variable holding the token (CAM_SECRET_…, never the token)
      "auth_header": "Authorization",           # default
      "auth_scheme": "Bearer",                  # default; "" sends the bare token
      "params": {"segment": "dach"},            # extra query parameters
      "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 100}
                 or {"type": "cursor", "param": "cursor", "next_path": "meta.next_cursor"}
                 or {"type": "none"},
      "max_pages": 100, "timeout": 10, "retries": 3, "backoff": 1.0,
      "columns": {"email": "work_email", "company": "organization.name"}
    }

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with exponential backoff,
honouring ``Retry-After``; anything else, or running out of retries, fails this source's harvest.

Requests go through ``cam.egress``: an address off the public internet is refused (unless
``AICMO_CAM_EGRESS_ALLOW`` names it), also after a redirect. An error answer is recorded by its status
alone, never its body: ``last_error`` and the job's errors are readable with a read-only API key, and
a body could carry whatever the far end holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ValidationError

from cam.egress import EgressRefused, check_url, egress_session, status_text
from cam.secrets import MissingSecret, secret_from_env, secret_name_problem
from cam.sources.base import LeadSourceBackend, SourceError, SourceRecord

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0


def dig(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"``; None where the path does not lead anywhere."""
    for part in [p for p in path.split(".") if p]:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class HttpJsonSource(LeadSourceBackend):
    kind = "http_json"

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        config = super().clean_config(config)
        url = str(config.get("url", ""))
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValidationError({"url": f"Enter an http(s) URL, not {url!r}."})
        try:
            check_url(url)
        except EgressRefused as exc:
            raise ValidationError({"url": f"{url}: {exc}."}) from None
        pagination = config.setdefault("pagination", {"type": "none"})
        if pagination.get("type") not in ("none", "page", "cursor"):
            raise ValidationError({"pagination": "type must be none, page or cursor."})
        if pagination.get("type") == "cursor" and not pagination.get("next_path"):
            raise ValidationError({"pagination": "Cursor pagination needs next_path (where the next cursor is)."})
        for key, default, low in (("max_pages", 100, 1), ("timeout", 10, 1), ("retries", 3, 0)):
            value = config.setdefault(key, default)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < low:
                raise ValidationError({key: f"Must be a number of at least {low}."})
        config.setdefault("backoff", 1.0)
        auth_env = config.get("auth_env") or ""
        if auth_env and (problem := secret_name_problem(str(auth_env))):
            raise ValidationError({"auth_env": problem})
        return config

    def __init__(self, config: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config)
        # The token's header is dropped on a redirect to another host, whatever its name.
        self.session = egress_session(secret_headers=(self.config.get("auth_header", "Authorization"),))
        self.sleep = sleep

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.get("auth_env"):
            try:
                token = secret_from_env(self.config["auth_env"], purpose="this lead source's API token")
            except MissingSecret as exc:
                raise SourceError(str(exc)) from None
            scheme = self.config.get("auth_scheme", "Bearer")
            headers[self.config.get("auth_header", "Authorization")] = f"{scheme} {token}" if scheme else token
        return headers

    def _get(self, params: dict[str, Any], headers: dict[str, str]) -> Any:
        url, retries = self.config["url"], int(self.config["retries"])
        for attempt in range(retries + 1):
            wait = float(self.config["backoff"]) * (2 ** attempt)
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=self.config["timeout"])
            except EgressRefused as exc:
                raise SourceError(f"{url}: {exc}.") from None
            except requests.exceptions.ChunkedEncodingError:
                # The connection dropped while the body was being read. urllib3's message can quote a
                # line of that body, so it is not repeated.
                problem = "ChunkedEncodingError: the connection broke while the answer was being read"
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except requests.RequestException as exc:
                raise SourceError(f"{url} could not be fetched ({type(exc).__name__}: {exc}).") from None
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise SourceError(f"{url} answered with something that is not JSON.") from None
                    except RecursionError:  # the json module reads nested arrays and objects recursively
                        raise SourceError(f"{url} answered with JSON nested too deeply to read.") from None
                problem = f"HTTP {status_text(response.status_code)}"
                if response.status_code not in RETRY_STATUSES:
                    raise SourceError(f"{url} refused the request ({problem}).")
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
            if attempt < retries:
                self.sleep(wait)
        raise SourceError(f"{url} failed after {retries + 1} attempts (last: {problem}).")

    def records(self) -> Iterator[SourceRecord]:
        headers = self._headers()
        pagination = self.config["pagination"]
        kind = pagination.get("type", "none")
        params = dict(self.config.get("params", {}))
        page = int(pagination.get("start", 1))
        if kind == "page" and pagination.get("size_param"):
            params[pagination["size_param"]] = pagination.get("size", 100)
        item = 0
        for _ in range(int(self.config["max_pages"])):
            if kind == "page":
                params[pagination.get("param", "page")] = page
            body = self._get(params, headers)
            items = dig(body, self.config.get("records_path", "")) if self.config.get("records_path") else body
            if not isinstance(items, list):
                raise SourceError(f"No list of records at {self.config.get('records_path') or 'the top level'}.")
            for data in items:
                item += 1
                if isinstance(data, Mapping):
                    yield SourceRecord(line=item, data=data)
                else:
                    yield SourceRecord(line=item, data={"value": data}, error="record is not a JSON object")
            if kind == "none" or not items:
                return
            if kind == "page":
                page += 1
            else:
                cursor = dig(body, pagination["next_path"])
                if not cursor:
                    return
                params[pagination.get("param", "cursor")] = cursor

    def map_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        # API records are often nested: a mapping may name a dotted path ("organization.name").
        mapped = super().map_record(data)
        for lead_field, path in self.config.get("columns", {}).items():
            if "." in path:
                value = dig(data, path)
                if value is not None:
                    mapped[lead_field] = value
        return mapped
