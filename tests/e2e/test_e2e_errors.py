"""Bad input and foreign ids: the documented 4xx answers, always in the error shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_support import (
    Phones,
    addresses,
    assert_error,
    async_wait_until,
    copies,
    create_channel,
    tag,
    wait_broadcast_done,
)

pytestmark = pytest.mark.e2e


async def test_bad_input_gets_documented_errors(server: Any) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e errors")
        phones = Phones(client, channel_id)
        await phones.write(addresses("08", 1)[0], "START")
        good = {"channel_id": channel_id, "text": f"ok {tag()}"}

        malformed = await client.post(
            "/api/v1/broadcasts",
            content=b'{"channel_id": 1, "text": ',
            headers={"Content-Type": "application/json"},
        )
        assert_error(malformed, 400, "bad_json")
        assert_error(
            await client.post("/api/v1/broadcasts", json={**good, "channel_id": 987654}),
            404,
            "not_found",
        )
        assert_error(await client.post("/api/v1/broadcasts", json={**good, "text": ""}), 422)
        assert_error(
            await client.post("/api/v1/broadcasts", json={**good, "text": "x" * 4097}), 422
        )
        assert_error(
            await client.post("/api/v1/broadcasts", json={**good, "send_at": "tomorrow"}), 422
        )
        assert_error(await client.post("/api/v1/broadcasts", json={**good, "text": "   "}), 422)
        naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
        assert_error(await client.post("/api/v1/broadcasts", json={**good, "send_at": naive}), 422)
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert_error(await client.post("/api/v1/broadcasts", json={**good, "send_at": past}), 422)
        assert_error(
            await client.post("/api/v1/broadcasts", json={**good, "topic_keys": ["gibt-es-nicht"]}),
            422,
        )
        assert_error(await client.post("/api/v1/broadcasts", json={"text": "no channel"}), 422)
        assert_error(await client.post("/api/v1/broadcasts", json={**good, "txt": "typo"}), 422)
        assert_error(
            await client.post(f"/sandbox/{10**9}/phones/4911/messages", json={"text": "START"}), 404
        )
        assert_error(
            await client.post(
                f"/sandbox/{channel_id}/phones/4911/messages",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            400,
            "bad_json",
        )
        # 4096 is the limit, not one below it.
        ok = await client.post("/api/v1/broadcasts", json={**good, "text": "y" * 4096})
        assert ok.status_code == 201, ok.text

        empty_channel = await create_channel(client, "e2e nobody")
        assert_error(
            await client.post(
                "/api/v1/broadcasts", json={"channel_id": empty_channel, "text": "hi"}
            ),
            422,
        )
        # Nothing was created by the refused requests: only the 4096-char draft exists here.
        listed = (await client.get("/api/v1/broadcasts", params={"limit": 200})).json()["items"]
        mine = [b for b in listed if b["channel_id"] in {channel_id, empty_channel}]
        assert [len(b["text"]) for b in mine] == [4096], mine

        assert_error(await client.get(f"/api/v1/broadcasts/{10**9}"), 404, "not_found")
        # State conflicts: a broadcast is sent once; a finished one cannot be cancelled.
        draft_id = ok.json()["id"]
        assert (await client.post(f"/api/v1/broadcasts/{draft_id}/send")).status_code == 200
        assert_error(await client.post(f"/api/v1/broadcasts/{draft_id}/send"), 409, "conflict")
        await wait_broadcast_done(client, draft_id)
        assert_error(await client.post(f"/api/v1/broadcasts/{draft_id}/cancel"), 409, "conflict")
        assert_error(await client.get("/api/v1/conversations/999999999"), 404, "not_found")

    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        assert_error(await anonymous.get("/api/v1/channels"), 401, "unauthorized")
        assert_error(await anonymous.post("/api/v1/broadcasts", json=good), 401, "unauthorized")
        bogus = {"Authorization": "Bearer rf_not_a_real_token"}
        assert_error(await anonymous.get("/api/v1/channels", headers=bogus), 401, "unauthorized")


async def test_another_workspace_sees_none_of_our_ids(server: Any) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e isolation")
        phones = Phones(client, channel_id)
        person = addresses("09", 1)[0]
        await phones.write(person, "START")
        wrote = await phones.write(person, f"Privat {tag()}")
        conversation_id = wrote["conversation_id"]
        contact_id = wrote["contact_id"]
        created = await client.post(
            "/api/v1/broadcasts", json={"channel_id": channel_id, "text": f"ours {tag()}"}
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]

    slug = f"other-{tag()[:8]}"
    server.cli("workspace", "create", slug)
    other_token = server.cli("token", "create", "--workspace", slug, "--role", "owner")
    other_token = other_token.strip().splitlines()[-1].strip()
    assert other_token.startswith("rf_"), other_token

    async with server.async_client(token=other_token) as other:
        assert (await other.get("/api/v1/channels")).status_code == 200
        assert_error(await other.get(f"/api/v1/channels/{channel_id}"), 404, "not_found")
        assert_error(await other.get(f"/api/v1/broadcasts/{broadcast_id}"), 404, "not_found")
        assert_error(await other.get(f"/api/v1/contacts/{contact_id}"), 404, "not_found")
        assert_error(await other.get(f"/api/v1/conversations/{conversation_id}"), 404, "not_found")
        assert_error(await other.get(f"/api/v1/conversations/{conversation_id}/messages"), 404)
        # Writing through foreign ids is refused the same way, and changes nothing.
        assert_error(
            await other.post(
                "/api/v1/broadcasts", json={"channel_id": channel_id, "text": "hijack"}
            ),
            404,
        )
        assert_error(await other.post(f"/api/v1/broadcasts/{broadcast_id}/send"), 404)
        assert_error(await other.post(f"/api/v1/broadcasts/{broadcast_id}/cancel"), 404)
        assert_error(
            await other.post(
                f"/api/v1/conversations/{conversation_id}/messages", json={"text": "hijack"}
            ),
            404,
        )
        assert_error(await other.post(f"/api/v1/conversations/{conversation_id}/resolve"), 404)
        for path in ("/api/v1/contacts", "/api/v1/conversations", "/api/v1/broadcasts"):
            response = await other.get(path)
            assert response.status_code == 200, response.text
            assert response.json()["items"] == [], (path, response.json())
        assert (await other.get("/api/v1/contacts", params={"channel_id": channel_id})).json()[
            "items"
        ] == []

    async with server.async_client() as client:
        still = (await client.get(f"/api/v1/broadcasts/{broadcast_id}")).json()
        assert still["status"] == "draft", still
        conversation = (await client.get(f"/api/v1/conversations/{conversation_id}")).json()
        assert conversation["status"] == "open", conversation
        items = (await client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
        assert "hijack" not in [m["text"] for m in items["items"]], items
        inbox = await Phones(client, channel_id).inbox(person)
        assert not [m for m in inbox if m["text"] == "hijack"], inbox


async def test_an_agent_token_may_answer_but_not_broadcast(server: Any) -> None:
    agent_token = server.cli("token", "create", "--workspace", "demo", "--role", "agent")
    agent_token = agent_token.strip().splitlines()[-1].strip()
    async with server.async_client() as owner, server.async_client(token=agent_token) as agent:
        channel_id = await create_channel(owner, "e2e roles")
        phones = Phones(owner, channel_id)
        person = addresses("15", 1)[0]
        await phones.write(person, "START")
        wrote = await phones.write(person, f"Frage an den Support {tag()}")
        refused = await agent.post(
            "/api/v1/broadcasts", json={"channel_id": channel_id, "text": "not mine to send"}
        )
        assert_error(refused, 403, "forbidden")
        assert_error(
            await agent.post("/api/v1/channels", json={"kind": "sandbox", "name": "x"}), 403
        )
        answer = f"Antwort vom Agenten {tag()}"
        replied = await agent.post(
            f"/api/v1/conversations/{wrote['conversation_id']}/messages", json={"text": answer}
        )
        assert replied.status_code == 201, replied.text

        async def arrived() -> list[dict[str, Any]]:
            return copies(await phones.inbox(person), answer)

        assert len(await async_wait_until(arrived, timeout=10, message="agent's answer")) == 1
