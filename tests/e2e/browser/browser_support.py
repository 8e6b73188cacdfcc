"""Helpers for browser tests: Debian's Chromium driven by Playwright against the real server.

No browser is ever downloaded: Playwright's driver comes with the ``playwright`` wheel
and the browser is ``/usr/bin/chromium`` (``apt-get install chromium``, as ``.ci/run``
does). Outside CI a machine without it skips these tests and says why; in CI
(``CI=true``) that is a failure. Screenshots go to ``test-artifacts/screenshots``;
with ``RUNDFUNK_SCREENSHOTS=docs`` they also replace the ones in ``docs/screenshots``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

# ``server`` below is the e2e suite's real ``rundfunk serve`` process (tests/e2e/conftest.py).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# Long enough for a broadcast to reach a phone on a busy 2-core CI machine.
TIMEOUT_MS = 15_000


def new_page(browser: Any, server: Any, *, locale: str = "en-US") -> Any:
    context = browser.new_context(
        base_url=server.base_url, locale=locale, viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page: Any, email: str, password: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto("/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/dashboard$"))


def member_page(browser: Any, server: Any, *, role: str, email: str) -> Any:
    """A tab signed in as a new member of the demo workspace with ``role``."""
    password = "correct horse battery"
    server.cli(
        "member", "create", "--workspace", "demo", "--email", email,
        "--role", role, "--password", password,
    )  # fmt: skip
    page = new_page(browser, server)
    sign_in(page, email, password)
    return page


def screenshot(page: Any, name: str) -> Path:
    """Save what the page shows now as ``<name>.png`` (a test artifact; see the module)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("RUNDFUNK_SCREENSHOTS") == "docs":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SCREENSHOTS / path.name)
    return path
