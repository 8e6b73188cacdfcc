"""The page at / tells a newcomer where the API docs and the sandbox are."""

from __future__ import annotations

import httpx


async def test_home_page_links_docs_and_sandbox(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/docs"' in response.text
    assert "/sandbox/" in response.text
