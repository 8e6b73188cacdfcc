"""The sandbox's simulated phones: writing, reading, addresses, and the mount switch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from rundfunk.config import Settings
from rundfunk.services import workspaces
from rundfunk.services.actors import Role
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime


async def test_phone_writes_and_duplicates_are_separate_messages(
    client: httpx.AsyncClient, tenant
) -> None:
    url = f"/sandbox/{tenant.channel_id}/phones/+49-151_abc/messages"
    first = await client.post(url, json={"text": "hello"})
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["action"] == "conversation"
    assert body["duplicate"] is False
    assert body["conversation_id"] is not None
    second = (await client.post(url, json={"text": "hello"})).json()
    assert second["message_id"] != body["message_id"]
    assert second["conversation_id"] == body["conversation_id"]


async def test_media_without_text_is_accepted(client: httpx.AsyncClient, tenant) -> None:
    response = await client.post(
        f"/sandbox/{tenant.channel_id}/phones/4911/messages",
        json={"media_url": "https://example.test/cat.jpg"},
    )
    assert response.status_code == 202, response.text


async def test_phone_refusals(client: httpx.AsyncClient, tenant, assert_error) -> None:
    base = f"/sandbox/{tenant.channel_id}/phones"
    assert_error(await client.post(f"{base}/4911/messages", json={}), 422, "invalid", "text")
    assert_error(
        await client.post(f"{base}/4911/messages", json={"text": "   "}), 422, "invalid", "text"
    )
    assert_error(
        await client.post(f"{base}/4911/messages", json={"text": "x" * 4097}),
        422,
        "invalid",
        "body.text",
    )
    assert_error(
        await client.post(f"{base}/4911/messages", json={"text": "hi", "media_url": "file:///etc"}),
        422,
        "invalid",
        "body.media_url",
    )
    for address in ["a" * 65, "49%20151", "49.151", "49%2F1"]:
        response = await client.post(f"{base}/{address}/messages", json={"text": "hi"})
        assert response.status_code in (404, 422), (address, response.text)
        assert set(response.json()) == {"error"}
    assert_error(
        await client.post(f"{base}/{'a' * 65}/messages", json={"text": "hi"}),
        422,
        "invalid",
        "path.address",
    )
    assert_error(
        await client.post("/sandbox/999/phones/4911/messages", json={"text": "hi"}),
        404,
        "not_found",
        "999",
    )
    assert_error(await client.get("/sandbox/999/phones/4911/messages"), 404, "not_found")


async def test_phone_inbox_is_a_list(client: httpx.AsyncClient, tenant, runtime: Runtime) -> None:
    url = f"/sandbox/{tenant.channel_id}/phones/4912/messages"
    empty = await client.get(url)
    assert empty.status_code == 200
    assert empty.json() == []


async def test_sandbox_is_not_mounted_when_disabled(
    tmp_path, database_url: str, runtime: Runtime, tenant, assert_error
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        demo=False,
        sandbox_enabled=False,
    )
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(
            f"/sandbox/{tenant.channel_id}/phones/4911/messages", json={"text": "hi"}
        )
        assert_error(response, 404, "not_found")
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert not any(p.startswith("/sandbox") for p in paths)


@pytest.fixture
async def working_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.create(settings, run_worker=True)
    try:
        yield rt
    finally:
        await rt.close()


async def test_with_the_worker_phones_receive_broadcasts_and_replies(
    settings: Settings, working_runtime: Runtime
) -> None:
    """End to end in one process: START, confirmation, broadcast, reply all arrive."""
    db = working_runtime.db
    workspace_id = await workspaces.create_workspace(db, slug="live")
    token = await workspaces.create_token(db, workspace_id=workspace_id, role=Role.OWNER)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, runtime=working_runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        channel = (
            await http.post("/api/v1/channels", json={"kind": "sandbox", "name": "S"}, headers=auth)
        ).json()
        phone_url = f"/sandbox/{channel['id']}/phones/4915/messages"
        assert (await http.post(phone_url, json={"text": "START"})).status_code == 202

        async def inbox_texts(count: int) -> list[str]:
            for _ in range(200):
                items = (await http.get(phone_url)).json()
                if len(items) >= count:
                    return [i["text"] for i in items]
                await asyncio.sleep(0.05)
            raise AssertionError(f"the phone got {items}")

        assert "Welcome" in (await inbox_texts(1))[0]
        created = await http.post(
            "/api/v1/broadcasts",
            json={"channel_id": channel["id"], "text": "Big news"},
            headers=auth,
        )
        broadcast_id = created.json()["id"]
        sent = await http.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=auth)
        assert sent.status_code == 200, sent.text
        assert (await inbox_texts(2))[1] == "Big news"

        conversation_id = (await http.post(phone_url, json={"text": "thanks!"})).json()[
            "conversation_id"
        ]
        reply = await http.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"text": "You're welcome"},
            headers=auth,
        )
        assert reply.status_code == 201
        assert (await inbox_texts(3))[2] == "You're welcome"
        for _ in range(200):
            stats = (await http.get(f"/api/v1/broadcasts/{broadcast_id}", headers=auth)).json()
            if stats["stats"]["queued"] == 0:
                break
            await asyncio.sleep(0.05)
        assert stats["stats"]["total"] == 1
        assert stats["stats"]["queued"] == 0
