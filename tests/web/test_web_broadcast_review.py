"""The broadcast review through the API: create and send answer 422 with the reason when
the message fails, comes out empty or is too long for recipients of the real audience; a
broadcast whose every send failed is reported ``failed``; ``send_at`` more than a year
ahead is 422."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from rundfunk.db.tables import contacts
from rundfunk.db.types import utcnow
from rundfunk.worker.runtime import Runtime

UPPER = "Hallo {{ contact.name.upper() }}"


async def _audience(phone: Any, tenant: Any, channel_id: int | None = None) -> None:
    channel = channel_id or tenant.channel_id
    await phone(channel, "4901", "START", name="Anna")
    await phone(channel, "4902", "START")  # no name
    await phone(channel, "4903", "START", name="Mia")


async def test_create_refuses_a_text_that_fails_for_a_nameless_subscriber(
    client: httpx.AsyncClient, tenant: Any, phone: Any, assert_error: Any
) -> None:
    await _audience(phone, tenant)
    answer = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": UPPER},
        headers=tenant.auth(),
    )
    message = assert_error(answer, 422, "invalid", "4902", "'None' has no attribute 'upper'")
    assert message.startswith("text: for 4902 the text cannot be personalized")
    assert "1 of 3 recipients checked" in message
    listed = await client.get("/api/v1/broadcasts", headers=tenant.auth())
    assert listed.json()["items"] == []


async def test_create_refuses_an_empty_or_too_long_personalized_message(
    client: httpx.AsyncClient, tenant: Any, phone: Any, runtime: Runtime, assert_error: Any
) -> None:
    await _audience(phone, tenant)
    async with runtime.db.write() as conn:
        await conn.execute(update(contacts).values(attributes={"city": "Köln"}))
        await conn.execute(
            update(contacts).where(contacts.c.address == "4903").values(attributes={})
        )
    body = {"channel_id": tenant.channel_id, "text": "{{ contact.attributes.city | upper }}"}
    answer = await client.post("/api/v1/broadcasts", json=body, headers=tenant.auth())
    assert_error(answer, 422, "invalid", "for Mia (4903) the message comes out empty")
    async with runtime.db.write() as conn:
        await conn.execute(
            update(contacts)
            .where(contacts.c.address == "4903")
            .values(attributes={"city": "x" * 4090})
        )
    body["text"] = "Hallo {{ contact.attributes.city }}!"
    answer = await client.post("/api/v1/broadcasts", json=body, headers=tenant.auth())
    assert_error(answer, 422, "invalid", "has 4097 characters; the channel allows 4096")


async def test_send_refuses_when_the_audience_changed_since_the_draft(
    client: httpx.AsyncClient, tenant: Any, phone: Any, runtime: Runtime, assert_error: Any
) -> None:
    await phone(tenant.channel_id, "4901", "START", name="Anna")
    created = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": UPPER},
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    await phone(tenant.channel_id, "4902", "START")  # subscribes later, without a name
    broadcast_id = created.json()["id"]
    answer = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=tenant.auth())
    assert_error(answer, 422, "invalid", "for 4902 the text cannot be personalized")
    shown = await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=tenant.auth())
    assert shown.json()["status"] == "draft" and shown.json()["stats"]["total"] == 0


async def test_send_at_more_than_a_year_ahead_is_422(
    client: httpx.AsyncClient, tenant: Any, phone: Any, assert_error: Any
) -> None:
    await _audience(phone, tenant)
    for days, status in ((400, 422), (300, 201)):
        answer = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": tenant.channel_id,
                "text": "Hi",
                "send_at": (utcnow() + timedelta(days=days)).isoformat(),
            },
            headers=tenant.auth(),
        )
        if status == 422:
            assert_error(answer, 422, "invalid", "send_at is more than a year ahead")
        else:
            assert answer.status_code == 201 and answer.json()["status"] == "scheduled"


async def test_a_broadcast_whose_every_send_failed_is_reported_failed(
    client: httpx.AsyncClient, tenant: Any, phone: Any, runtime: Runtime
) -> None:
    refusing = await client.post(
        "/api/v1/channels",
        json={"kind": "sandbox", "name": "refusing",
              "settings": {"sandbox": {"fail_permanent_share": 1.0}}},
        headers=tenant.auth(),
    )  # fmt: skip
    assert refusing.status_code == 201, refusing.text
    channel_id = refusing.json()["id"]
    await _audience(phone, tenant, channel_id)
    created = await client.post(
        "/api/v1/broadcasts", json={"channel_id": channel_id, "text": "News"}, headers=tenant.auth()
    )
    broadcast_id = created.json()["id"]
    await runtime.start_worker()
    sent = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=tenant.auth())
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 10
    while True:
        shown = (await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=tenant.auth()))
        body = shown.json()
        if body["status"] not in {"sending"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "failed", body
    assert body["stats"]["failed"] == 3 and body["stats"]["sent"] == 0
    assert body["status_reason"].startswith("all 3 sends failed:")
    assert body["finished_at"] is not None
