"""A real browser for admin tests: Debian's Chromium driven by Playwright's sync API.

`make test` installs the `chromium` package when it runs as root. A missing browser fails the
tests that need it, with a message saying how to install it: it never skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio event loop in the test thread, and Django refuses ORM calls
# from a thread with a running loop unless told that this is safe (it is: the loop is Playwright's,
# and the test's own database calls are plain synchronous ones).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
# As root there is no sandbox; the other flags keep Chromium from reaching for Google's servers,
# which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
                    "(`make test` installs it as root; or run `apt-get install chromium`).", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Reports each Content-Security-Policy violation of a page to the test, as it happens: the page's own
# scripts have not run yet when this does, so nothing they do goes unseen. The browser's console line
# for the same refusal ("Refused to ...") is collected too.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolation(`${event.effectiveDirective} refused ${event.blockedURI || "inline"} `
                      + `at ${event.sourceFile || event.documentURI}:${event.lineNumber}`);
});
"""


@pytest.fixture
def page(browser):
    # The window the back office is designed for: everything key fits 1440 x 900 without scrolling sideways.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    violations: list[str] = []
    page.csp_violations = violations
    # Every request a page makes that leaves the test server (nothing should: the theme's fonts, icons and
    # scripts are served by the site itself).
    offsite: list[str] = []
    page.offsite_requests = offsite
    page.on("request", lambda request: offsite.append(request.url)
            if not request.url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:")) else None)

    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"console: {message.text}")

    page.expose_function("cspViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", on_console)
    yield page
    context.close()
