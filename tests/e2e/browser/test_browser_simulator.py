"""The phone simulator and the dashboard in Chromium: phones type START and STOP and see
the confirmations arrive live; a broadcast sent through the REST API appears on the
subscribed phone in the open page, not on the unsubscribed one; the dashboard then
shows the new subscriber and the broadcast's funnel."""

from __future__ import annotations

import re
from typing import Any

from browser_support import screenshot
from e2e_support import tag, wait_until


def _stat(page: Any, name: str) -> int:
    return int(re.sub(r"\D", "", page.locator(f'[data-stat="{name}"]').inner_text()))


def _fits_a_phone(page: Any, name: str) -> None:
    """At 375 px wide nothing in the page sticks out sideways (wide tables scroll)."""
    page.set_viewport_size({"width": 375, "height": 800})
    wide = page.evaluate(
        """Array.from(document.querySelectorAll("main *"))
            .filter((e) => e.getBoundingClientRect().right > 376 && !e.closest(".table-wrap"))
            .map((e) => e.tagName + "." + e.className)"""
    )
    assert wide == [], wide
    page.set_viewport_size({"width": 1280, "height": 860})


def _send(page: Any, phone: int, text: str) -> None:
    page.get_by_label(f"Message from phone {phone}", exact=True).fill(text)
    page.get_by_role("button", name=f"Send from phone {phone}").click()


def test_phones_see_confirmations_and_a_broadcast_arrive_live(owner_page: Any, server: Any) -> None:
    page = owner_page
    client = server.client
    page.goto("/dashboard")
    subscribers_before = _stat(page, "subscribers")
    created = client.post("/api/v1/channels", json={"kind": "sandbox", "name": f"Sim {tag()[:8]}"})
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]

    page.goto(f"/simulator?channel={channel_id}")
    page.evaluate("window.stillTheSamePage = true")
    phone_1, phone_2, phone_3 = (page.locator(f"#phone-{n}-messages") for n in (1, 2, 3))
    _send(page, 1, "START")
    phone_1.locator(".msg.mine", has_text="START").wait_for()
    phone_1.locator(".msg.theirs", has_text="You will now receive our news").wait_for()
    _send(page, 2, "START")
    phone_2.locator(".msg.theirs", has_text="Welcome").wait_for()
    _send(page, 2, "STOP")
    phone_2.locator(".msg.theirs", has_text="You have unsubscribed").wait_for()
    _send(page, 3, "Do you deliver on Sundays?")
    phone_3.locator(".msg.mine .ticks.delivered").wait_for()
    assert phone_3.locator(".msg.theirs").count() == 0  # a question gets no automatic answer

    marker = tag()[:10]
    broadcast = client.post(
        "/api/v1/broadcasts", json={"channel_id": channel_id, "text": f"Spring sale {marker}"}
    )
    assert broadcast.status_code == 201, broadcast.text
    broadcast_id = broadcast.json()["id"]
    sent = client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
    assert sent.status_code == 200, sent.text
    phone_1.locator(".msg.theirs", has_text=marker).wait_for()
    wait_until(
        lambda: client.get(f"/api/v1/broadcasts/{broadcast_id}").json()["status"] == "done",
        timeout=15,
        message="the broadcast finished",
    )
    page.wait_for_timeout(1500)  # a stream tick or two: nothing else may arrive
    assert phone_2.get_by_text(marker).count() == 0
    assert phone_3.get_by_text(marker).count() == 0
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened
    screenshot(page, "simulator")
    _fits_a_phone(page, "simulator")

    page.goto("/dashboard")
    assert _stat(page, "subscribers") == subscribers_before + 1
    funnel = page.locator(f'[data-broadcast="{broadcast_id}"]')
    assert marker in funnel.inner_text()
    assert funnel.get_by_role("list", name="Delivery funnel of 1 recipients").is_visible()
    assert "Sent" in funnel.inner_text() and "Delivered" in funnel.inner_text()
    screenshot(page, "dashboard")
    _fits_a_phone(page, "dashboard")
