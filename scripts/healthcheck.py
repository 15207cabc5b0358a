"""The web container's health check: asks CAM's own /api/cam/health/ rather than only opening the port.

Healthy when the site answers and what the web process needs answers with it: the database, the cache
(every API request counts its throttles there) and the broker (the admin and the API queue jobs on it).
The worker's heartbeat is left to the monitors that read /api/cam/health/ from outside: restarting the
web container would not bring a worker back, and the task cluster in docker-compose.yml starts only once
this container is healthy, so counting it here would keep a stack that was stopped for a while from
ever starting again.

Standard library only, so it starts in a fraction of the second Django would take. Exit 0 when healthy,
1 otherwise, with one line saying why (Docker keeps it in `docker inspect`).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("CAM_HEALTHCHECK_URL", "http://127.0.0.1:8000/api/cam/health/")
TIMEOUT_SECONDS = 4
# The checks that say whether this container serves; the others are reported, not counted.
WEB_CHECKS = ("database", "cache", "broker")


def host_header(allowed_hosts: str) -> str:
    """A host Django accepts (it answers 400 to any other): the first of ALLOWED_HOSTS, a leading-dot
    domain as the domain itself; "localhost" for a wildcard or nothing."""
    for entry in (part.strip() for part in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


def probe(url: str, host: str) -> tuple[bool, str]:
    """Whether CAM at ``url`` serves, and a line saying why not."""
    # The proxy in front would say the request came over https; without it a site with
    # SECURE_SSL_REDIRECT on would answer the probe with a redirect.
    request = urllib.request.Request(url, headers={"Host": host, "X-Forwarded-Proto": "https",
                                                   "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:  # a 503 still carries the report
        status, body = error.code, error.read()
    except (OSError, ValueError) as error:
        return False, f"{url} did not answer: {error}"
    try:
        checks = {check["name"]: check for check in json.loads(body)["checks"]}
    except (ValueError, KeyError, TypeError):
        return False, f"{url} answered {status} without a health report"
    failed = [checks[name]["message"] for name in WEB_CHECKS if checks.get(name, {}).get("status") != "ok"]
    if failed:
        return False, " ".join(failed)
    return True, f"{url} answered {status}: database, cache and broker answer"


def main() -> int:
    healthy, message = probe(URL, host_header(os.environ.get("ALLOWED_HOSTS", "")))
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
