"""Browser fixtures: Chromium (Debian's) through Playwright, and a signed-in owner tab.

The helpers the tests call live in ``browser_support`` (a conftest cannot be imported
by name reliably when pytest collects several folders).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, new_page, sign_in


# Per module, not per session: while Playwright's sync API is running it holds an event
# loop in this thread, and every asyncio test after it would fail to start its own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = "browser tests need Debian's Chromium: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def owner_page(browser: Any, server: Any) -> Iterator[Any]:
    """A browser tab signed in as the demo workspace's owner."""
    page = new_page(browser, server)
    sign_in(page, server.email, server.password)
    yield page
    page.context.close()
