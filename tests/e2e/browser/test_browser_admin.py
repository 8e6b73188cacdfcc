"""Channels, team and settings in Chromium: add a sandbox and a WhatsApp channel (webhook
URL, verify token, QR code), invite an agent who signs in through the link, and change
the workspace's time zone (an invalid imprint URL is refused next to its field).

The server is shared with every browser and e2e test: names are unique, the WhatsApp
channel points at a closed loopback port (no network) and is disabled afterwards, and
the settings are put back.
"""

from __future__ import annotations

import re
from typing import Any

from browser_support import new_page, screenshot
from e2e_support import tag


def test_add_a_sandbox_and_a_whatsapp_channel(owner_page: Any, server: Any) -> None:
    page = owner_page
    name = f"Rehearsal {tag()[:6]}"
    page.goto("/channels")
    page.get_by_role("link", name="Add sandbox channel").first.click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Subscribe words", exact=True).fill("START, JA")
    page.get_by_role("button", name="Add channel").click()
    page.wait_for_url(re.compile(r".*/channels/\d+$"))
    assert page.get_by_role("heading", name=name).is_visible()
    assert page.get_by_text("START, JA").is_visible()
    assert page.get_by_role("link", name="Open the phone simulator").is_visible()

    page.goto("/channels")
    assert page.locator("#channels").get_by_role("link", name=name).is_visible()

    wa_name = f"WhatsApp {tag()[:6]}"
    page.get_by_role("link", name="Add WhatsApp channel").click()
    page.get_by_label("Name", exact=True).fill(wa_name)
    page.get_by_label("Phone number ID").fill("1001")
    page.get_by_label("WhatsApp Business Account ID").fill("not digits")
    page.get_by_label("Display phone number").fill("+49 30 1234567")
    page.get_by_label("Access token").fill("EAAG-browser-test-token")
    page.get_by_label("App secret").fill("browser-test-app-secret")
    page.get_by_role("button", name="Add channel").click()
    error = page.locator("#e-waba_id")
    assert "digits only" in error.inner_text()
    page.get_by_label("WhatsApp Business Account ID").fill("2002")
    page.get_by_label("Access token").fill("EAAG-browser-test-token")  # never sent back
    page.get_by_label("App secret").fill("browser-test-app-secret")
    page.get_by_role("button", name="Add channel").click()
    page.wait_for_url(re.compile(r".*/channels/\d+$"))
    channel_id = int(page.url.rsplit("/", 1)[1])
    try:
        webhook = page.locator("#webhook-url").inner_text()
        assert webhook == f"{server.base_url}/webhooks/whatsapp/{channel_id}"
        assert len(page.locator("#verify-token").inner_text()) >= 20  # generated
        qr = page.get_by_role("img", name="QR code for All news")
        qr.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 100", arg=qr.element_handle()
        )
        assert page.get_by_text("https://wa.me/49301234567?text=START").first.is_visible()
        screenshot(page, "channels-whatsapp")
        page.goto("/channels")
        row = page.locator("#channels tr", has_text=wa_name)
        assert row.get_by_text("+49 30 1234567").is_visible()
        screenshot(page, "channels-list")
    finally:
        assert server.client is not None
        server.client.patch(f"/api/v1/channels/{channel_id}", json={"status": "disabled"})


def test_an_invited_agent_sets_a_password_and_is_signed_in(
    owner_page: Any, browser: Any, server: Any
) -> None:
    page = owner_page
    email = f"agent-{tag()[:8]}@example.com"
    page.goto("/team")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Name", exact=True).fill("Alex Agent")
    page.get_by_label("Role", exact=True).select_option("agent")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.locator("#invite-link").input_value()
    assert link.startswith(f"{server.base_url}/invite/")
    assert page.locator(f'tr[data-member="{email}"]').get_by_text("invited").is_visible()
    screenshot(page, "team")

    invited = new_page(browser, server)  # a fresh browser: no cookies of the owner
    try:
        invited.goto(link)
        assert invited.get_by_role("heading", name="Welcome, Alex Agent").is_visible()
        invited.get_by_label("Password").fill("short")
        invited.get_by_role("button", name="Set password and sign in").click()
        assert "at least 8 characters" in invited.locator("#e-password").inner_text()
        invited.get_by_label("Password").fill("a long enough password")
        invited.get_by_role("button", name="Set password and sign in").click()
        invited.wait_for_url(re.compile(r".*/dashboard$"))
        nav = invited.get_by_role("navigation", name="Main navigation")
        assert nav.get_by_role("link", name="Inbox").is_visible()
        assert nav.get_by_role("link", name="Broadcasts").count() == 0
        assert nav.get_by_role("link", name="Team").count() == 0
        assert invited.locator(".topbar .role").inner_text() == "agent"
        invited.goto(link)  # used up
        assert invited.get_by_role("heading", name="This invitation cannot be used").is_visible()
    finally:
        invited.context.close()


def test_the_time_zone_is_saved_and_a_bad_imprint_url_is_refused(
    owner_page: Any, server: Any
) -> None:
    assert server.client is not None
    before = server.client.get("/api/v1/workspace").json()
    page = owner_page
    try:
        page.goto("/settings")
        page.get_by_label("Time zone").select_option("Europe/Berlin")
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_url(re.compile(r".*/settings$"))
        assert page.get_by_role("status").get_by_text("The settings are saved.").is_visible()
        assert page.get_by_label("Time zone").input_value() == "Europe/Berlin"
        assert server.client.get("/api/v1/workspace").json()["timezone"] == "Europe/Berlin"
        screenshot(page, "settings")

        page.get_by_label("Imprint URL").fill("imprint.example.com")
        page.get_by_role("button", name="Save settings").click()
        error = page.locator("#e-imprint_url")
        assert "http:// or https://" in error.inner_text()
        assert page.get_by_label("Imprint URL").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("Imprint URL").input_value() == "imprint.example.com"
    finally:
        server.client.patch(
            "/api/v1/workspace",
            json={"timezone": before["timezone"], "imprint_url": before["imprint_url"]},
        )
