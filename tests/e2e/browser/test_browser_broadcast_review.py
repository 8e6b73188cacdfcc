"""The review in Chromium: a text the preview shows fine but that fails for a subscriber
without a name never reaches the confirmation; the reason stands next to the text field,
and the corrected text goes on to "Send to N subscribers now?"."""

from __future__ import annotations

import re
from typing import Any

from browser_support import screenshot
from e2e_support import tag


def test_review_blocks_a_text_that_fails_for_someone_with_the_reason(
    owner_page: Any, server: Any
) -> None:
    marker = tag()[:8]
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Review {marker}"}
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    for address, name in (("4915190000101", "Lena"), ("4915190000102", None),
                          ("4915190000103", "Tom")):  # fmt: skip
        wrote = server.client.post(
            f"/sandbox/{channel_id}/phones/{address}/messages",
            json={"text": "START", **({"name": name} if name else {})},
        )
        assert wrote.status_code == 202, wrote.text

    page = owner_page
    page.goto("/broadcasts/new")
    page.get_by_label("Channel", exact=True).select_option(str(channel_id))
    page.locator("#recipients").filter(has_text="3 subscribers will receive this").wait_for()
    text = page.get_by_label("Text", exact=True)
    text.fill("Hallo {{ contact.name.upper() }}")
    page.locator("#preview").filter(has_text="Hallo TOM").wait_for()  # looks fine for Tom

    page.get_by_role("button", name="Review").click()
    reason = page.locator("#e-text")
    reason.wait_for()
    assert reason.inner_text().startswith(
        "For 4915190000102 the text cannot be personalized: 'None' has no attribute 'upper'"
    )
    assert "1 of 3 recipients checked are affected" in reason.inner_text()
    assert page.get_by_role("heading", name=re.compile("Send to")).count() == 0
    assert page.get_by_role("button", name="Send now").count() == 0
    assert text.get_attribute("aria-invalid") == "true"
    assert "e-text" in (text.get_attribute("aria-describedby") or "")
    screenshot(page, "broadcasts-review-refused")

    text.fill("Hallo {{ contact.name | default('du', true) | upper }}")
    page.get_by_role("button", name="Review").click()
    page.get_by_role("heading", name="Send to 3 subscribers now?").wait_for()
    listed = server.client.get("/api/v1/broadcasts").json()["items"]
    assert all(b["channel_id"] != channel_id for b in listed)  # nothing written yet
