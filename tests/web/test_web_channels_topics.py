"""Channels and topics: create, list, show, and what the API refuses."""

from __future__ import annotations

import httpx

from rundfunk.services.actors import Role


async def test_create_list_and_get_a_channel(client: httpx.AsyncClient, tenant) -> None:
    response = await client.post(
        "/api/v1/channels",
        json={"kind": "sandbox", "name": "  Second  ", "settings": {"throughput": 50}},
        headers=tenant.auth(Role.ADMIN),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["kind"] == "sandbox"
    assert created["name"] == "Second"
    assert created["status"] == "active"
    assert "credentials" not in created and "settings" not in created

    listed = (await client.get("/api/v1/channels", headers=tenant.auth(Role.AGENT))).json()
    assert [c["id"] for c in listed["items"]] == [tenant.channel_id, created["id"]]

    shown = await client.get(f"/api/v1/channels/{created['id']}", headers=tenant.auth())
    assert shown.status_code == 200
    assert shown.json() == created


async def test_channel_refusals(client: httpx.AsyncClient, tenant, assert_error) -> None:
    auth = tenant.auth()
    assert_error(
        await client.post("/api/v1/channels", json={"kind": "fax", "name": "x"}, headers=auth),
        422,
        "invalid",
        "fax",
        "sandbox",
    )
    assert_error(
        await client.post("/api/v1/channels", json={"kind": "sandbox", "name": ""}, headers=auth),
        422,
        "invalid",
        "body.name",
    )
    assert_error(
        await client.post("/api/v1/channels", json={"kind": "sandbox", "name": "  "}, headers=auth),
        422,
        "invalid",
        "body.name",
        "blank",
    )
    assert_error(
        await client.post(
            "/api/v1/channels",
            json={"kind": "sandbox", "name": "x", "settings": {"throughput": "fast"}},
            headers=auth,
        ),
        422,
        "invalid",
        "settings",
    )
    assert_error(await client.get("/api/v1/channels/999", headers=auth), 404, "not_found", "999")


async def test_agent_and_editor_may_not_create_channels(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    for role in (Role.AGENT, Role.EDITOR):
        response = await client.post(
            "/api/v1/channels", json={"kind": "sandbox", "name": "x"}, headers=tenant.auth(role)
        )
        assert_error(response, 403, "forbidden", "admin")


async def test_create_and_list_topics(client: httpx.AsyncClient, tenant) -> None:
    auth = tenant.auth(Role.EDITOR)
    response = await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=auth
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"id": response.json()["id"], "key": "sport", "name": "Sport"}
    await client.post("/api/v1/topics", json={"key": "Kultur", "name": "Kultur"}, headers=auth)
    listed = (await client.get("/api/v1/topics", headers=tenant.auth(Role.AGENT))).json()
    assert [t["key"] for t in listed["items"]] == ["kultur", "sport"]


async def test_topic_refusals(client: httpx.AsyncClient, tenant, assert_error) -> None:
    auth = tenant.auth()
    await client.post("/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=auth)
    assert_error(
        await client.post("/api/v1/topics", json={"key": "sport", "name": "Again"}, headers=auth),
        409,
        "conflict",
        "sport",
    )
    assert_error(
        await client.post("/api/v1/topics", json={"key": "two words", "name": "x"}, headers=auth),
        422,
        "invalid",
        "key",
    )
    assert_error(
        await client.post("/api/v1/topics", json={"key": "x" * 65, "name": "x"}, headers=auth),
        422,
        "invalid",
        "body.key",
    )
    assert_error(
        await client.post(
            "/api/v1/topics", json={"key": "news", "name": "News"}, headers=tenant.auth(Role.AGENT)
        ),
        403,
        "forbidden",
    )
