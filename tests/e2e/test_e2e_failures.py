"""Failure injection: a sandbox that answers 20 % of sends "temporarily unavailable".
Retries must still put exactly one copy on every phone."""

from __future__ import annotations

from typing import Any

import pytest
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

pytestmark = pytest.mark.e2e


async def test_retryable_failures_are_retried_to_exactly_one_copy_each(server: Any) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(
            client, "e2e flaky", settings={"sandbox": {"fail_retryable_share": 0.2}}
        )
        phones = Phones(client, channel_id)
        people = addresses("10", 50)
        await phones.write_many([(a, "START") for a in people])

        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Trotzdem {{{{ contact.address }}}} #{marker}",
            },
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        assert (await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")).status_code == 200

        final = await wait_broadcast_done(client, broadcast_id, timeout=60)
        stats = final["stats"]
        assert stats["total"] == 50, stats
        assert stats["failed"] == 0 and stats["skipped"] == 0, stats
        assert stats["sent"] + stats["delivered"] + stats["read"] == 50, stats

        boxes = await phones.inboxes(people)
        counts = {a: [m["text"] for m in copies(box, marker)] for a, box in boxes.items()}
        wrong = {a: c for a, c in counts.items() if c != [f"Trotzdem {a} #{marker}"]}
        assert not wrong, f"phones without exactly one correct copy: {wrong}"

        # The welcome confirmations went through the same flaky channel (messages, not
        # deliveries): each phone ends with exactly one welcome plus the one copy.
        async def settled() -> bool:
            current = await phones.inboxes(people)
            return all(len(box) >= 2 for box in current.values())

        await async_wait_until(settled, timeout=30, interval=0.2, message="every welcome")
        boxes = await phones.inboxes(people)
        extra = {a: [m["text"] for m in box] for a, box in boxes.items() if len(box) != 2}
        assert not extra, f"phones with duplicates: {extra}"
        again = await get_broadcast(client, broadcast_id)
        assert again["stats"]["failed"] == 0, again
