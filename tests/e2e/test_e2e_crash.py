"""Crash safety: SIGKILL the server in the middle of a 5,000-recipient broadcast, start
it again on the same data, and every phone still ends up with exactly one copy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from e2e_support import (
    Phones,
    addresses,
    copies,
    create_channel,
    get_broadcast,
    tag,
    wait_broadcast_done,
)

pytestmark = pytest.mark.e2e

SUBSCRIBERS = 5000
THROUGHPUT = 500.0  # msgs/s on this channel: the 5,000 sends take ~10 s
KILL_AFTER = 1000  # progressed sends before the kill (enough for a rate figure)
START_CONCURRENCY = 50  # bounded; 16 measured no faster: the server is CPU-bound


def _progressed(stats: dict[str, int]) -> int:
    return stats["sent"] + stats["delivered"] + stats["read"]


async def test_sigkill_mid_broadcast_then_restart_delivers_exactly_once(fresh_server: Any) -> None:
    server = fresh_server
    people = addresses("11", SUBSCRIBERS)
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e crash", settings={"throughput": THROUGHPUT})
        phones = Phones(client, channel_id)
        started = time.monotonic()
        results = await phones.write_many([(a, "START") for a in people], limit=START_CONCURRENCY)
        subscribe_s = time.monotonic() - started
        assert {r["action"] for r in results} == {"opt_in"}
        print(
            f"\n[e2e] subscribed {SUBSCRIBERS} phones in {subscribe_s:.1f}s "
            f"({SUBSCRIBERS / subscribe_s:.0f} START/s at concurrency {START_CONCURRENCY})"
        )

        marker = tag()
        text = f"Eilmeldung für {{{{ contact.address }}}} #{marker}"
        created = await client.post(
            "/api/v1/broadcasts", json={"channel_id": channel_id, "text": text}
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        sent = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
        assert sent.status_code == 200, sent.text
        assert sent.json()["stats"]["total"] == SUBSCRIBERS, sent.json()

        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 60
        while True:
            stats = (await get_broadcast(client, broadcast_id))["stats"]
            samples.append((time.monotonic(), _progressed(stats)))
            if samples[-1][1] >= KILL_AFTER:
                break
            assert time.monotonic() < deadline, f"broadcast does not progress: {stats}"
            await asyncio.sleep(0.02)

    server.kill()
    at_kill = samples[-1][1]
    assert at_kill < SUBSCRIBERS, (
        f"the broadcast finished ({at_kill}) before the kill could land; samples: {samples[-5:]}"
    )
    first = next((t, n) for t, n in samples if n > 0)
    window = samples[-1][0] - first[0]
    rate = (at_kill - first[1]) / window if window > 0 else float("nan")
    figures = (
        f"delivery rate before the kill: {rate:.0f} msgs/s over {window:.2f}s "
        f"(channel throughput {THROUGHPUT:.0f}/s); killed at {at_kill}/{SUBSCRIBERS}; "
        f"subscribing took {subscribe_s:.1f}s"
    )
    print(f"[e2e] {figures}")

    restart_started = time.monotonic()
    server.restart()
    async with server.async_client() as client:
        final = await wait_broadcast_done(client, broadcast_id, timeout=90)
        print(f"[e2e] done {time.monotonic() - restart_started:.1f}s after the restart began")
        stats = final["stats"]
        assert stats["total"] == SUBSCRIBERS, (stats, figures)
        assert stats["failed"] == 0 and stats["skipped"] == 0, (stats, figures)
        assert _progressed(stats) == SUBSCRIBERS, (stats, figures)

        phones = Phones(client, channel_id)
        started = time.monotonic()
        boxes = await phones.inboxes(people, limit=16)
        print(f"[e2e] read {SUBSCRIBERS} phone inboxes in {time.monotonic() - started:.1f}s")
        wrong = {
            a: [m["text"] for m in copies(box, marker)]
            for a, box in boxes.items()
            if [m["text"] for m in copies(box, marker)] != [f"Eilmeldung für {a} #{marker}"]
        }
        assert not wrong, (
            f"{len(wrong)} phones without exactly one copy, e.g. {dict(list(wrong.items())[:5])}; "
            f"{figures}"
        )
        # The rate limit held before the crash: at most the throughput plus its burst.
        if window >= 1.0:
            assert rate <= THROUGHPUT * 1.25, figures

        # The welcome confirmations (conversation messages, same queue, same crash) never
        # arrive twice either; some may still be queued behind the broadcast.
        twice = {a: len(box) - 1 for a, box in boxes.items() if len(box) > 2}
        assert not twice, f"phones with a repeated confirmation: {dict(list(twice.items())[:5])}"
