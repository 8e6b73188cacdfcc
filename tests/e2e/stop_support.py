"""Measuring Pause and Cancel from outside: when did each phone get its copy?

The sandbox's phones stamp every message they receive (``received_at``, the server's
clock, which is this machine's). A stop is measured from the moment the call was made
(``asked``) and judged against the moment its answer was back (``returned``): no copy
may arrive after that, except one that was already on its way to the platform when
the call came (``IN_FLIGHT_S``: the sandbox writes receipts in groups, a few ms apart).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from e2e_support import Phones, async_wait_until, copies, get_broadcast

IN_FLIGHT_S = 0.25
QUIET_S = 1.0  # how long nothing may arrive after a stop before we look


def received(message: dict[str, Any]) -> float:
    """A phone message's ``received_at`` as a Unix time."""
    stamp = datetime.fromisoformat(str(message["received_at"]).replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


@dataclass
class Stop:
    asked: float  # Unix time the call was made
    returned: float  # ... and its answer was back
    arrivals: list[float]  # every copy's received time, this broadcast

    @property
    def late(self) -> list[float]:
        """Seconds after ``returned`` of the copies that arrived after the call returned
        (beyond what was already in flight)."""
        return [t - self.returned for t in self.arrivals if t > self.returned + IN_FLIGHT_S]

    @property
    def stop_s(self) -> float:
        """From the call to the last copy (negative: the last one came before the call)."""
        return max(self.arrivals, default=self.asked) - self.asked

    def describe(self) -> str:
        return (
            f"call took {1000 * (self.returned - self.asked):.0f} ms; last copy "
            f"{1000 * self.stop_s:+.0f} ms after the call; {len(self.arrivals)} copies"
        )


async def arrivals(phones: Phones, people: list[str], marker: str) -> list[float]:
    boxes = await phones.inboxes(people, limit=16)
    return sorted(received(m) for box in boxes.values() for m in copies(box, marker))


async def progressed(client: httpx.AsyncClient, broadcast_id: int) -> int:
    stats = (await get_broadcast(client, broadcast_id))["stats"]
    return int(stats["sent"] + stats["delivered"] + stats["read"])


async def wait_progress(client: httpx.AsyncClient, broadcast_id: int, count: int) -> None:
    async def far_enough() -> bool:
        return await progressed(client, broadcast_id) >= count

    await async_wait_until(far_enough, timeout=20, interval=0.02, message=f"{count} sends")


async def claimed(client: httpx.AsyncClient, broadcast_id: int) -> int:
    """Deliveries still held by a worker (``sending``)."""
    response = await client.get(
        f"/api/v1/broadcasts/{broadcast_id}/deliveries", params={"status": "sending"}
    )
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def now() -> float:
    return time.time()
