"""The team inbox over the API: a phone writes, the team replies, notes, assigns, resolves."""

from __future__ import annotations

import httpx
import pytest

from rundfunk.services.actors import Role


@pytest.fixture
async def conversation(tenant, phone) -> dict:
    result = await phone(tenant.channel_id, "4915100000002", "hello", name="Grace")
    assert result["action"] == "conversation"
    return result


async def test_hello_opens_a_conversation(client: httpx.AsyncClient, tenant, conversation) -> None:
    auth = tenant.auth(Role.AGENT)
    listed = (await client.get("/api/v1/conversations", headers=auth)).json()
    [item] = listed["items"]
    assert item["id"] == conversation["conversation_id"]
    assert item["contact_id"] == conversation["contact_id"]
    assert item["contact_address"] == "4915100000002"
    assert item["contact_name"] == "Grace"
    assert item["status"] == "open"
    assert item["assignee_id"] is None
    assert listed["next_after_id"] is None

    shown = (await client.get(f"/api/v1/conversations/{item['id']}", headers=auth)).json()
    assert {k: v for k, v in shown.items() if not k.startswith("window_")} == {
        k: v for k, v in item.items() if not k.startswith("window_")
    }
    # The sandbox has no service window by default: free text is always allowed.
    assert shown["window_open"] is True and shown["window_closes_at"] is None
    messages = (
        await client.get(f"/api/v1/conversations/{item['id']}/messages", headers=auth)
    ).json()["items"]
    assert [(m["direction"], m["text"]) for m in messages] == [("in", "hello")]


async def test_reply_is_queued_and_note_is_stored(
    client: httpx.AsyncClient, tenant, conversation
) -> None:
    auth = tenant.auth(Role.AGENT)
    url = f"/api/v1/conversations/{conversation['conversation_id']}"
    reply = await client.post(f"{url}/messages", json={"text": "Hi Grace!"}, headers=auth)
    assert reply.status_code == 201, reply.text
    out = reply.json()
    assert out["direction"] == "out"
    assert out["status"] == "queued"
    assert out["author_id"] == tenant.member_ids[Role.AGENT]

    note = await client.post(f"{url}/notes", json={"text": "VIP customer"}, headers=auth)
    assert note.status_code == 201, note.text
    assert note.json()["direction"] == "note"

    messages = (await client.get(f"{url}/messages", headers=auth)).json()["items"]
    assert [(m["direction"], m["text"], m["status"]) for m in messages] == [
        ("in", "hello", "received"),
        ("out", "Hi Grace!", "queued"),
        ("note", "VIP customer", "stored"),
    ]
    page = (await client.get(f"{url}/messages", params={"limit": 2}, headers=auth)).json()
    assert len(page["items"]) == 2
    rest = (
        await client.get(
            f"{url}/messages", params={"after_id": page["next_after_id"]}, headers=auth
        )
    ).json()
    assert [m["direction"] for m in rest["items"]] == ["note"]


async def test_reply_and_note_refusals(
    client: httpx.AsyncClient, tenant, conversation, assert_error
) -> None:
    auth = tenant.auth(Role.AGENT)
    url = f"/api/v1/conversations/{conversation['conversation_id']}"
    for path, nothing in (
        ("messages", "text: a message needs text or media"),
        ("notes", "body.text: Field required"),
    ):
        assert_error(
            await client.post(f"{url}/{path}", json={"text": ""}, headers=auth),
            422,
            "invalid",
            "body.text",
        )
        assert_error(
            await client.post(f"{url}/{path}", json={"text": "x" * 4097}, headers=auth),
            422,
            "invalid",
            "body.text: String should have at most 4096 characters",
        )
        assert_error(
            await client.post(f"{url}/{path}", json={}, headers=auth),
            422,
            "invalid",
            nothing,
        )
    assert_error(
        await client.post(f"{url}/messages", json={"text": "x", "media_url": "nope"}, headers=auth),
        422,
        "invalid",
        "body.media_url",
    )


async def test_assign_resolve_reopen(
    client: httpx.AsyncClient, tenant, conversation, phone, assert_error
) -> None:
    auth = tenant.auth(Role.AGENT)
    conversation_id = conversation["conversation_id"]
    url = f"/api/v1/conversations/{conversation_id}"
    agent_id = tenant.member_ids[Role.AGENT]

    assigned = await client.post(f"{url}/assign", json={"member_id": agent_id}, headers=auth)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee_id"] == agent_id

    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    mine = await client.get("/api/v1/conversations", params={"assignee_id": agent_id}, headers=auth)
    assert ids(mine) == [conversation_id]
    nobody = await client.get("/api/v1/conversations", params={"unassigned": "true"}, headers=auth)
    assert ids(nobody) == []

    unassigned = await client.post(f"{url}/assign", json={"member_id": None}, headers=auth)
    assert unassigned.json()["assignee_id"] is None
    assert_error(
        await client.post(f"{url}/assign", json={"member_id": 9999}, headers=auth),
        404,
        "not_found",
        "member",
    )
    assert_error(
        await client.post(f"{url}/assign", json={}, headers=auth),
        422,
        "invalid",
        "body.member_id",
    )

    resolved = await client.post(f"{url}/resolve", headers=auth)
    assert resolved.json()["status"] == "resolved"
    open_now = await client.get("/api/v1/conversations", params={"status": "open"}, headers=auth)
    assert ids(open_now) == []
    done = await client.get("/api/v1/conversations", params={"status": "resolved"}, headers=auth)
    assert ids(done) == [conversation_id]

    reopened = await client.post(f"{url}/reopen", headers=auth)
    assert reopened.json()["status"] == "open"

    await client.post(f"{url}/resolve", headers=auth)
    await phone(tenant.channel_id, "4915100000002", "one more thing")
    shown = (await client.get(url, headers=auth)).json()
    assert shown["status"] == "open"


async def test_conversation_filters(
    client: httpx.AsyncClient, tenant, conversation, assert_error
) -> None:
    auth = tenant.auth()
    by_channel = await client.get(
        "/api/v1/conversations", params={"channel_id": tenant.channel_id}, headers=auth
    )
    assert len(by_channel.json()["items"]) == 1
    other = await client.get("/api/v1/conversations", params={"channel_id": 999}, headers=auth)
    assert other.json()["items"] == []
    assert_error(
        await client.get("/api/v1/conversations", params={"status": "closed"}, headers=auth),
        422,
        "invalid",
        "query.status",
    )
    assert_error(
        await client.get(
            "/api/v1/conversations", params={"unassigned": "true", "assignee_id": 1}, headers=auth
        ),
        422,
        "invalid",
        "assignee_id",
    )
    assert_error(
        await client.get("/api/v1/conversations", params={"unassigned": "perhaps"}, headers=auth),
        422,
        "invalid",
        "query.unassigned",
    )


async def test_unknown_conversation_is_404(client: httpx.AsyncClient, tenant, assert_error) -> None:
    auth = tenant.auth()
    assert_error(await client.get("/api/v1/conversations/55", headers=auth), 404, "not_found")
    assert_error(
        await client.post("/api/v1/conversations/55/messages", json={"text": "x"}, headers=auth),
        404,
        "not_found",
    )
