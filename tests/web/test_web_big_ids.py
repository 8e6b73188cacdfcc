"""Rows whose ids are beyond 2^31 are written and read through the API like any other
(migration 0006: BIGINT ids on PostgreSQL; SQLite's INTEGER is 64-bit anyway)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from rundfunk.worker.runtime import Runtime

BIG = 2**31 + 11  # the first ids an int4 column could not hold
BIGGER = 2**40 + 7


async def test_ids_beyond_2_31_are_stored_and_read_through_the_api(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    auth = tenant.auth()
    created = await client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": "Big"}, headers=auth
    )
    assert created.status_code == 201, created.text
    async with runtime.db.write() as conn:
        # A channel renumbered beyond 2^31 (nothing refers to it yet) ...
        await conn.execute(
            text("UPDATE channels SET id = :big WHERE id = :id"),
            {"big": BIG, "id": created.json()["id"]},
        )
        # ... and the next contacts, conversations, messages and broadcasts numbered
        # from 2^40 on (PostgreSQL: their sequences; SQLite: a row above them).
        if runtime.db.is_sqlite:
            await conn.execute(
                text(
                    "INSERT INTO topics (id, workspace_id, key, name, created_at)"
                    " VALUES (:id, :ws, 'big', 'Big', '2026-12-01 10:00:00')"
                ),
                {"id": BIGGER, "ws": tenant.workspace_id},
            )
        else:
            for table in ("contacts", "conversations", "messages", "broadcasts", "topics"):
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :v)"),
                    {"v": BIGGER},
                )
    wrote = await phone(BIG, "4915100000009", "START")
    await phone(BIG, "4915100000009", "Hallo, eine Frage")
    contact_id = wrote["contact_id"]

    channel = await client.get(f"/api/v1/channels/{BIG}", headers=auth)
    assert channel.status_code == 200 and channel.json()["id"] == BIG
    contact = await client.get(f"/api/v1/contacts/{contact_id}", headers=auth)
    assert contact.status_code == 200, contact.text
    assert contact.json()["channel_id"] == BIG and contact.json()["status"] == "subscribed"
    listed = await client.get("/api/v1/contacts", params={"channel_id": BIG}, headers=auth)
    assert [c["id"] for c in listed.json()["items"]] == [contact_id]
    conversations = await client.get(
        "/api/v1/conversations", params={"channel_id": BIG}, headers=auth
    )
    (conversation,) = conversations.json()["items"]
    thread = await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=auth)
    assert [m["text"] for m in thread.json()["items"]] == ["Hallo, eine Frage"]
    topic = await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=auth
    )
    broadcast = await client.post(
        "/api/v1/broadcasts", json={"channel_id": BIG, "text": "Hallo"}, headers=auth
    )
    assert broadcast.status_code == 201, broadcast.text
    shown = await client.get(f"/api/v1/broadcasts/{broadcast.json()['id']}", headers=auth)
    assert shown.json()["channel_id"] == BIG
    if not runtime.db.is_sqlite:  # the sequences really counted on past 2^40
        assert contact_id > BIGGER and conversation["id"] > BIGGER
        assert broadcast.json()["id"] > BIGGER and topic.json()["id"] > BIGGER
    else:
        assert topic.json()["id"] == BIGGER + 1
    after = await client.get(
        "/api/v1/contacts", params={"after_id": contact_id - 1, "limit": 1}, headers=auth
    )
    assert [c["id"] for c in after.json()["items"]] == [contact_id]
