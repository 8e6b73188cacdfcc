"""Pause and Cancel through the real server's API act at once, whatever is claimed.

A sandbox channel at 10 msg/s: the worker claims the whole audience in one chunk, so
when the call comes nearly all of it waits on the rate limiter inside the worker.
From the moment the call returns no phone may get a copy (``stop_support``); what
was claimed goes back to the queue (pause) or is counted skipped (cancel); resuming
sends exactly one copy to each phone. Runs on SQLite and, in the PostgreSQL pass, on
PostgreSQL (one ``rundfunk serve`` process either way; several workers:
``test_e2e_pause_workers``).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from e2e_server import Server
from e2e_support import (
    Phones,
    addresses,
    async_wait_until,
    copies,
    create_channel,
    get_broadcast,
    tag,
    wait_broadcast_done,
)
from stop_support import QUIET_S, Stop, arrivals, claimed, now, progressed, wait_progress

pytestmark = pytest.mark.e2e

PEOPLE = 30
RATE = 10.0
STOP_AFTER = 4


async def slow_channel(client: httpx.AsyncClient, name: str, people: list[str]) -> Phones:
    """A sandbox channel whose ``people`` subscribed (confirmations sent), then slowed to
    ``RATE`` (no burst)."""
    channel_id = await create_channel(client, name)
    phones = Phones(client, channel_id)
    await phones.write_many([(a, "START") for a in people], limit=10)

    async def confirmed() -> bool:
        boxes = await phones.inboxes(people, limit=16)
        return all(len(box) >= 1 for box in boxes.values())

    await async_wait_until(confirmed, timeout=20, interval=0.1, message="confirmations")
    slowed = await client.patch(
        f"/api/v1/channels/{channel_id}", json={"config": {"throughput": RATE, "burst": 1}}
    )
    assert slowed.status_code == 200, slowed.text
    return phones


async def start(client: httpx.AsyncClient, channel_id: int, text: str) -> int:
    created = await client.post("/api/v1/broadcasts", json={"channel_id": channel_id, "text": text})
    assert created.status_code == 201, created.text
    broadcast_id = int(created.json()["id"])
    sent = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
    assert sent.status_code == 200, sent.text
    return broadcast_id


async def stop(
    client: httpx.AsyncClient, phones: Phones, people: list[str], marker: str, action: str, bid: int
) -> Stop:
    """``action`` (pause / cancel) the broadcast; wait ``QUIET_S``; when did copies arrive?"""
    asked = now()
    response = await client.post(f"/api/v1/broadcasts/{bid}/{action}")
    returned = now()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == {"pause": "paused", "cancel": "cancelled"}[action]
    await asyncio.sleep(QUIET_S)
    return Stop(asked, returned, await arrivals(phones, people, marker))


async def test_api_pause_stops_at_once_and_resume_sends_one_copy_each(server: Server) -> None:
    marker = tag()
    people = addresses("3101", PEOPLE)
    async with server.async_client() as client:
        phones = await slow_channel(client, f"pause {marker}", people)
        broadcast_id = await start(client, phones.channel_id, f"Pause {marker}")
        await wait_progress(client, broadcast_id, STOP_AFTER)

        paused = await stop(client, phones, people, marker, "pause", broadcast_id)
        print(f"\n[e2e pause] {paused.describe()}")
        assert paused.late == [], f"copies after the pause returned: {paused.late}"
        assert len(paused.arrivals) < PEOPLE - 5, "the broadcast was not stopped"
        # What the worker had claimed is back in the queue, not held for a lease.
        assert await claimed(client, broadcast_id) == 0
        stats = (await get_broadcast(client, broadcast_id))["stats"]
        assert await progressed(client, broadcast_id) == len(paused.arrivals), stats
        assert stats["queued"] == PEOPLE - len(paused.arrivals), stats

        resumed = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
        assert resumed.status_code == 200, resumed.text
        final = await wait_broadcast_done(client, broadcast_id, timeout=30)
        assert final["stats"]["skipped"] == 0 and final["stats"]["failed"] == 0, final
        boxes = await phones.inboxes(people, limit=16)
        wrong = {a: len(copies(box, marker)) for a, box in boxes.items()}
        assert set(wrong.values()) == {1}, f"not one copy each: {wrong}"


async def test_api_cancel_stops_at_once_and_counts_the_rest_skipped(server: Server) -> None:
    marker = tag()
    people = addresses("3102", PEOPLE)
    async with server.async_client() as client:
        phones = await slow_channel(client, f"cancel {marker}", people)
        broadcast_id = await start(client, phones.channel_id, f"Cancel {marker}")
        await wait_progress(client, broadcast_id, STOP_AFTER)

        cancelled = await stop(client, phones, people, marker, "cancel", broadcast_id)
        print(f"\n[e2e cancel] {cancelled.describe()}")
        assert cancelled.late == [], f"copies after the cancel returned: {cancelled.late}"
        assert len(cancelled.arrivals) < PEOPLE - 5, "the broadcast was not stopped"
        assert await claimed(client, broadcast_id) == 0
        final = await get_broadcast(client, broadcast_id)
        stats = final["stats"]
        assert final["status"] == "cancelled", final
        assert await progressed(client, broadcast_id) == len(cancelled.arrivals), stats
        assert stats["skipped"] == PEOPLE - len(cancelled.arrivals), stats
        assert stats["queued"] == 0, stats
