"""Broadcasts in Chromium: compose with the live preview and recipient count, confirm,
watch the progress bar reach 100 % without a reload, and find the message on the
phones; an agent gets neither the menu entry nor the pages."""

from __future__ import annotations

import re
from typing import Any

from browser_support import member_page, screenshot
from e2e_support import tag, wait_until


def _phone_texts(server: Any, channel_id: int, address: str) -> list[str]:
    response = server.client.get(f"/sandbox/{channel_id}/phones/{address}/messages")
    assert response.status_code == 200, response.text
    return [m.get("text") or "" for m in response.json()]


# Nothing in the page's content sticks out of it at 375 px. (The frame's navigation
# row is the frame's business: it scrolls on its own.)
_OVERFLOW = """() => {
  const main = document.querySelector("main").getBoundingClientRect();
  return [...document.querySelectorAll("main *")]
    // A wide table scrolls inside its own .table-wrap; that is the intended layout.
    .filter((e) => e.getBoundingClientRect().right > main.right + 1 && !e.closest(".table-wrap"))
    .map((e) => e.tagName + "." + e.className);
}"""


def _fits_a_phone(page: Any) -> list[str]:
    """What sticks out sideways at 375 px (then back to the laptop size)."""
    page.set_viewport_size({"width": 375, "height": 800})
    sticking_out: list[str] = page.evaluate(_OVERFLOW)
    page.set_viewport_size({"width": 1280, "height": 860})
    return sticking_out


def test_compose_confirm_and_watch_a_broadcast_arrive(owner_page: Any, server: Any) -> None:
    marker = tag()[:8]
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Newsletter {marker}"}
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    phones = {"4915190000001": "Lena", "4915190000002": "Tom"}
    for address, name in phones.items():
        wrote = server.client.post(
            f"/sandbox/{channel_id}/phones/{address}/messages", json={"text": "START", "name": name}
        )
        assert wrote.status_code == 202, wrote.text

    page = owner_page
    page.goto("/broadcasts")
    page.get_by_role("link", name="New broadcast").click()
    page.wait_for_url(re.compile(r".*/broadcasts/new$"))
    page.get_by_label("Channel", exact=True).select_option(str(channel_id))
    recipients = page.locator("#recipients")
    recipients.filter(has_text="2 subscribers will receive this").wait_for()
    page.get_by_label("Text", exact=True).fill(
        f"Hallo {{{{ contact.name }}}}! Neues vom Markt {marker}"
    )
    preview = page.locator("#preview")
    preview.filter(has_text=f"Hallo Tom! Neues vom Markt {marker}").wait_for()
    assert "Tom, the newest subscriber" in preview.inner_text()
    screenshot(page, "broadcasts-compose")
    assert _fits_a_phone(page) == [], "the compose page is too wide at 375 px"

    page.get_by_role("button", name="Review").click()
    page.get_by_role("heading", name="Send to 2 subscribers now?").wait_for()
    page.get_by_role("button", name="Send now").click()
    page.wait_for_url(re.compile(r".*/broadcasts/\d+$"))
    page.evaluate("window.stillTheSamePage = true")
    page.locator("#progress[aria-valuenow='100']").wait_for()
    page.locator("#progress-text", has_text="100 %").wait_for()
    assert page.evaluate("window.stillTheSamePage === true"), "the page was reloaded"

    for address, name in phones.items():
        wanted = f"Hallo {name}! Neues vom Markt {marker}"
        wait_until(
            lambda a=address, w=wanted: w in _phone_texts(server, channel_id, a),
            timeout=15,
            message=f"{wanted!r} on {address}",
        )
    # The sandbox phones report delivered, then read: the funnel follows live.
    page.locator("#status", has_text="Done").wait_for()
    page.locator(".stat-label", has_text="Read").locator("xpath=..").locator(
        ".stat", has_text="2"
    ).wait_for()
    page.locator("#deliveries .badge.read").nth(1).wait_for()  # the table follows too
    assert page.evaluate("window.stillTheSamePage === true"), "the page was reloaded"
    screenshot(page, "broadcasts-stats")
    assert _fits_a_phone(page) == [], "the stats page is too wide at 375 px"

    page.get_by_role("link", name="Back to broadcasts").click()
    row = page.locator("tr", has_text=f"Neues vom Markt {marker}")
    row.get_by_text("Done").wait_for()
    assert f"Newsletter {marker}" in row.inner_text()
    screenshot(page, "broadcasts-list")


def test_an_agent_can_reach_no_broadcast_page(browser: Any, server: Any) -> None:
    page = member_page(browser, server, role="agent", email=f"agent-{tag()[:8]}@demo.test")
    navigation = page.get_by_role("navigation", name="Main navigation")
    navigation.get_by_role("link", name="Inbox").wait_for()
    assert navigation.get_by_role("link", name="Broadcasts").count() == 0
    for path in ("/broadcasts", "/broadcasts/new"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert page.get_by_role("heading", name="No access").is_visible()
    page.context.close()
