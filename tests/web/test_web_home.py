"""The page at / tells a newcomer where the API docs and the sandbox are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


async def test_home_page_links_docs_and_sandbox(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/docs"' in response.text
    assert "/sandbox/" in response.text


async def test_conversation_shows_the_reply_window(
    client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    created = await client.post(
        "/api/v1/channels",
        json={"kind": "sandbox", "name": "windowed", "settings": {"service_window_hours": 24}},
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    written = await phone(created.json()["id"], "4915199", "Hallo?")
    got = await client.get(
        f"/api/v1/conversations/{written['conversation_id']}", headers=tenant.auth()
    )
    body = got.json()
    assert body["window_open"] is True
    closes = datetime.fromisoformat(body["window_closes_at"])
    assert timedelta(hours=23) < closes - datetime.now(UTC) <= timedelta(hours=24)
