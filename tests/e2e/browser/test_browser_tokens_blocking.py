"""API tokens and blocking in Chromium: the owner creates a token on the team page (shown
once), the API takes it, *Revoke* (after the confirmation) ends it at once; a troll is
blocked from their contact page and what they write lands there, not in the inbox.
Both pages pass axe-core's WCAG A/AA checks."""

from __future__ import annotations

import random
from typing import Any

import httpx
from a11y_support import axe_violations
from browser_support import screenshot
from e2e_support import tag


def test_create_and_revoke_a_token_on_the_team_page(owner_page: Any, server: Any) -> None:
    page = owner_page
    name = f"zapier-{tag()[:6]}"
    page.goto("/team")
    page.get_by_label("Token name").fill(name)
    page.get_by_label("Role of the token").select_option("agent")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("rf_")
    api = httpx.Client(base_url=server.base_url, timeout=10)
    auth = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/contacts", headers=auth).status_code == 200
    assert axe_violations(page) == []
    screenshot(page, "team-api-tokens")

    page.goto("/team")
    assert secret not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke {name}").click()
    page.wait_for_url("**/team**")
    assert page.get_by_text("The token is revoked.").is_visible()
    assert api.get("/api/v1/contacts", headers=auth).status_code == 401
    api.close()


def test_block_a_troll_from_their_contact_page(owner_page: Any, server: Any) -> None:
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Block {tag()[:6]}"}
    )
    channel_id = created.json()["id"]
    number = f"49152{random.randint(10**6, 10**7 - 1)}"

    def writes(text: str) -> dict[str, Any]:
        response = server.client.post(
            f"/sandbox/{channel_id}/phones/{number}/messages", json={"text": text}
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    contact_id = writes("you are all idiots")["contact_id"]
    page = owner_page
    page.goto(f"/contacts/{contact_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Block", exact=True).click()
    page.wait_for_url(f"**/contacts/{contact_id}")
    assert page.get_by_role("button", name="Unblock").is_visible()
    assert writes("more spam")["action"] == "ignore"
    page.reload()
    section = page.locator("#blocked-messages")
    assert "more spam" in section.inner_text() and "1 message while blocked" in section.inner_text()
    assert axe_violations(page) == []
    page.goto("/inbox")
    assert "more spam" not in page.content()
