"""Contacts and topics in Chromium: a phone subscribes, the owner finds it, reads the
consent history, downloads the export (which holds it) and erases the person; the
topics page creates a topic that subscribers choose with START <key>."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from browser_support import screenshot
from e2e_support import tag


def _channel(server: Any, name: str) -> int:
    response = server.client.post("/api/v1/channels", json={"kind": "sandbox", "name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _phone_writes(server: Any, channel_id: int, number: str, text: str, **extra: Any) -> None:
    response = server.client.post(
        f"/sandbox/{channel_id}/phones/{number}/messages", json={"text": text, **extra}
    )
    assert response.status_code == 202, response.text


def test_owner_finds_exports_and_erases_a_subscriber(owner_page: Any, server: Any) -> None:
    marker = tag()[:6]
    channel_id = _channel(server, f"Contacts {marker}")
    # Ends in 9, so the neighbours below (ending in 0, 1, 2) are other people.
    number = f"49151{random.randint(10**6, 10**7 - 1)}9"
    _phone_writes(server, channel_id, number, "START", name=f"Erika {marker}")
    _phone_writes(server, channel_id, number, "Do you deliver on Sundays?")
    for n in range(3):  # a few neighbours, so the list looks like a real one
        _phone_writes(server, channel_id, f"{number[:-1]}{n}", "START", name=f"Guest {n} {marker}")
    page = owner_page

    page.goto("/contacts")
    page.get_by_role("heading", name="Contacts").wait_for()
    screenshot(page, "contacts-list")
    page.get_by_label("Search", exact=True).fill(number)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(rf".*/contacts\?q={number}.*"))
    rows = page.locator("#contacts-table tbody tr")
    assert rows.count() == 1
    page.get_by_role("link", name=f"Erika {marker}").click()

    page.wait_for_url(re.compile(r".*/contacts/\d+$"))
    contact_url = page.url
    history = page.locator("#consent-history")
    assert history.get_by_text("Opted in").is_visible()
    assert history.locator("code", has_text="START").first.is_visible()
    assert page.get_by_text("Do you deliver on Sundays?").is_visible()
    screenshot(page, "contacts-detail")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download data (JSON)").click()
    download = info.value
    assert download.suggested_filename.startswith("contact-")
    data = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert data["contact"]["address"] == number
    [event] = data["consent_events"]
    assert (event["kind"], event["keyword"], event["source"]) == ("opt_in", "START", "keyword")
    assert event["text_shown"], event
    assert "Do you deliver on Sundays?" in [m["text"] for m in data["messages"]]

    page.get_by_role("link", name="Erase contact…").click()
    page.wait_for_url(re.compile(r".*/erase$"))
    assert page.locator("#erase-summary").get_by_text("1 consent event").is_visible()
    page.get_by_role("button", name="Erase for good").click()
    page.wait_for_url(re.compile(r".*/contacts$"))
    assert page.get_by_role("status").get_by_text("is erased").is_visible()
    page.get_by_label("Search", exact=True).fill(number)
    page.get_by_role("button", name="Search").click()
    page.get_by_text("No contact matches these filters").wait_for()
    assert page.goto(contact_url).status == 404  # type: ignore[union-attr]
    contact_id = contact_url.rsplit("/", 1)[1]
    assert server.client.get(f"/api/v1/contacts/{contact_id}").status_code == 404


def test_editor_creates_a_topic_subscribers_choose(owner_page: Any, server: Any) -> None:
    marker = tag()[:6]
    key = f"news-{marker}"
    channel_id = _channel(server, f"Topics {marker}")
    page = owner_page
    page.goto("/topics")
    page.get_by_label("Key").fill(key)
    page.get_by_label("Name", exact=True).fill(f"Local news {marker}")
    page.get_by_role("button", name="Create topic").click()
    page.wait_for_url(re.compile(r".*/topics$"))
    row = page.locator(f"#topic-{key}")
    assert row.get_by_text(f"START {key}").is_visible()
    for n in range(2):
        _phone_writes(
            server, channel_id, f"4917{random.randint(10**7, 10**8 - 1)}{n}", f"START {key}"
        )
    page.reload()
    assert row.locator("td.num").inner_text().strip() == "2"
    screenshot(page, "topics")
    row.get_by_text("Rename").click()
    row.get_by_label(f"New name for {key}").fill(f"City news {marker}")
    row.get_by_role("button", name="Save name").click()
    page.wait_for_url(re.compile(r".*/topics$"))
    assert row.get_by_text(f"City news {marker}").is_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Delete City news {marker}").click()
    page.wait_for_url(re.compile(r".*/topics$"))
    page.get_by_text("Topic deleted.").wait_for()
    assert page.locator(f"#topic-{key}").count() == 0
