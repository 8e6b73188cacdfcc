"""The workspace's settings and its member list, with their role limits."""

from __future__ import annotations

from typing import Any

import httpx

from rundfunk.services.actors import Role


async def test_everyone_reads_the_workspace(client: httpx.AsyncClient, tenant) -> None:
    response = await client.get("/api/v1/workspace", headers=tenant.auth(Role.AGENT))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == tenant.workspace_id
    assert body["name"] == tenant.slug
    assert body["timezone"] == "UTC"
    assert "{workspace}" in body["welcome_text"]


async def test_admin_patches_only_what_is_sent(client: httpx.AsyncClient, tenant) -> None:
    response = await client.patch(
        "/api/v1/workspace",
        json={
            "name": "ACME News",
            "privacy_url": "https://acme.test/privacy",
            "timezone": "Europe/Berlin",
        },
        headers=tenant.auth(Role.ADMIN),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "ACME News"
    assert body["privacy_url"] == "https://acme.test/privacy"
    assert body["timezone"] == "Europe/Berlin"
    again = (await client.get("/api/v1/workspace", headers=tenant.auth())).json()
    assert again == body
    assert again["imprint_url"] == ""


async def test_patch_refusals(client: httpx.AsyncClient, tenant, assert_error) -> None:
    for role in (Role.AGENT, Role.EDITOR):
        response = await client.patch(
            "/api/v1/workspace", json={"name": "x"}, headers=tenant.auth(role)
        )
        assert_error(response, 403, "forbidden", "admin")
    auth = tenant.auth()
    assert_error(
        await client.patch("/api/v1/workspace", json={"timezone": "Mars/Olympus"}, headers=auth),
        422,
        "invalid",
        "body.timezone",
        "Mars/Olympus",
    )
    assert_error(
        await client.patch("/api/v1/workspace", json={"privacy_url": "ftp://x"}, headers=auth),
        422,
        "invalid",
        "body.privacy_url",
    )
    assert_error(
        await client.patch("/api/v1/workspace", json={"slug": "other"}, headers=auth),
        422,
        "invalid",
        "body.slug",
    )
    assert_error(
        await client.patch("/api/v1/workspace", json={"help_text": "x" * 4097}, headers=auth),
        422,
        "invalid",
        "body.help_text",
    )


async def test_members_need_admin(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.get("/api/v1/members", headers=tenant.auth(Role.ADMIN))
    assert response.status_code == 200
    items = response.json()["items"]
    assert {m["role"] for m in items} == {r.value for r in Role}
    assert all("password_hash" not in m for m in items)
    for role in (Role.AGENT, Role.EDITOR):
        assert_error(
            await client.get("/api/v1/members", headers=tenant.auth(role)), 403, "forbidden"
        )


async def test_audit_log_says_who_sent_which_broadcast(
    client: httpx.AsyncClient, tenant: Any, phone: Any, assert_error: Any
) -> None:
    await phone(tenant.channel_id, "4915111", "START")
    editor = tenant.auth(Role.EDITOR)
    created = await client.post(
        "/api/v1/broadcasts", json={"channel_id": tenant.channel_id, "text": "Hi"}, headers=editor
    )
    broadcast_id = created.json()["id"]
    await client.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=editor)

    assert_error(await client.get("/api/v1/audit", headers=editor), 403, "forbidden")
    log = (await client.get("/api/v1/audit", headers=tenant.auth(Role.ADMIN))).json()["items"]
    sent = [e for e in log if e["action"] == "broadcast.send"]
    assert len(sent) == 1
    assert sent[0]["target_id"] == broadcast_id
    assert sent[0]["details"] == {"total": 1}
    assert sent[0]["actor"].startswith("token:")  # the editor's API token
