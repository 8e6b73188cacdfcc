"""Failed webhook items in Chromium: the channel's page lists an item that could not be
applied, with its error; *Retry* applies it (the person's message reaches the inbox)
and the section is gone. The page passes axe-core's WCAG A/AA checks with it.

The item is put into the server's dead-letter list the way the applier puts it there
(``services.dead_letters.record``), on the server's own database."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

from a11y_support import axe_violations
from e2e_support import tag

from rundfunk.channels.base import InboundMessage
from rundfunk.db.session import Database
from rundfunk.db.types import utcnow
from rundfunk.services import dead_letters


def _record(url: str, channel_id: int, event: InboundMessage) -> None:
    """Record on a thread with its own loop (Playwright's sync API holds this one)."""

    async def record() -> None:
        db = Database(url)
        try:
            async with db.write() as conn:
                await dead_letters.record(
                    conn, channel_id=channel_id, event=event, error=ValueError("refused for a test")
                )
        finally:
            await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(record()))
    thread.start()
    thread.join()


def test_retry_a_failed_item_from_the_channel_page(owner_page: Any, server: Any) -> None:
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Failed {tag()[:6]}"}
    )
    channel_id = created.json()["id"]
    number = f"49153{random.randint(10**6, 10**7 - 1)}"
    text = f"Wann ist die Sitzung? {tag()[:6]}"
    event = InboundMessage(
        address=number, provider_message_id=f"in-{tag()}", timestamp=utcnow(), text=text
    )
    url = server.env.get("RUNDFUNK_DATABASE_URL") or f"sqlite:///{server.data_dir / 'rundfunk.db'}"
    _record(url, channel_id, event)

    page = owner_page
    page.goto(f"/channels/{channel_id}")
    section = page.locator("#failed")
    assert "refused for a test" in section.inner_text()
    page.get_by_text("Show the item").click()
    assert text in section.inner_text()
    assert axe_violations(page) == []
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(f"**/channels/{channel_id}**")
    assert page.get_by_text("The item is applied.").is_visible()
    assert page.locator("#failed").count() == 0
    listed = server.client.get("/api/v1/conversations").json()["items"]
    assert any(c["contact_address"] == number for c in listed)
