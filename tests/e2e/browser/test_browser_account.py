"""Signing in and out, the language switch and the password change, in Chromium."""

from __future__ import annotations

import re
from typing import Any

from browser_support import new_page, screenshot, sign_in


def test_sign_in_shows_the_dashboard_and_sign_out_ends_the_session(
    browser: Any, server: Any
) -> None:
    page = new_page(browser, server)
    page.goto("/account")
    page.wait_for_url(re.compile(r".*/login\?next=/account$"))
    screenshot(page, "login")
    page.get_by_label("E-mail address").fill(server.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("the e-mail address or the password is wrong").is_visible()
    sign_in(page, server.email, server.password)
    page.get_by_text("Owner").first.click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto("/account")
    page.wait_for_url(re.compile(r".*/login\?next=/account$"))
    page.context.close()
