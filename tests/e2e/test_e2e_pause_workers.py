"""Pause and Cancel with several workers on PostgreSQL: every worker stops at once.

``rundfunk serve --no-worker`` and two ``rundfunk worker`` processes on one fresh
PostgreSQL database; a sandbox channel at 10 msg/s (one limit shared by both). With
claims of 8 deliveries each, both workers hold claimed sends when the web node is
asked to pause: the signal (PostgreSQL ``NOTIFY``) stops both. No phone gets a copy
after the call returned, nothing stays claimed, resuming sends exactly one copy to
each; a cancel counts what was never sent as skipped.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from e2e_server import LOG_DIR, WebOnly, _free_port
from e2e_support import Phones, copies, create_channel, get_broadcast, tag, wait_broadcast_done
from stop_support import QUIET_S, Stop, arrivals, claimed, now, progressed, wait_progress
from test_e2e_workers import Worker

from rundfunk.testing.drill_setup import seed_subscribers

pytestmark = pytest.mark.e2e

PEOPLE = 30
RATE = 10.0


@pytest.fixture
def fleet(postgres_url: str) -> Iterator[tuple[WebOnly, list[Worker]]]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-pause-") as tmp:
        shared = {
            "RUNDFUNK_DATABASE_URL": postgres_url,
            "RUNDFUNK_SECRET_KEY": "e2e-pause-secret",
            "RUNDFUNK_CHUNK_SIZE": "8",  # both workers hold claims of one broadcast
        }
        web = WebOnly(Path(tmp) / "web", _free_port(), shared)
        workers: list[Worker] = []
        try:
            web.start()
            for name in ("worker-a", "worker-b"):
                workers.append(Worker(name, {**web.env, "RUNDFUNK_DATA_DIR": f"{tmp}/{name}"}))
            for worker in workers:
                worker.wait_running()
            yield web, workers
        finally:
            for worker in workers:
                worker.kill()
            web.stop()
            LOG_DIR.mkdir(exist_ok=True)
            stamp = f"{os.getpid()}-{web.port}"
            (LOG_DIR / f"pause-web-{stamp}.log").write_text(web.output)
            for worker in workers:
                (LOG_DIR / f"pause-{worker.name}-{stamp}.log").write_text(worker.output)


async def test_pause_and_cancel_stop_every_worker_at_once(
    fleet: tuple[WebOnly, list[Worker]], postgres_url: str
) -> None:
    web, workers = fleet
    # The seeded subscribers' addresses (drill_setup.seed_subscribers).
    people = [f"4917{i:08d}" for i in range(PEOPLE)]
    async with web.async_client() as client:
        channel_id = await create_channel(
            client, "e2e pause workers", settings={"throughput": RATE, "burst": 1}
        )
        db = await asyncpg.connect(postgres_url)
        try:
            await seed_subscribers(db, channel_id, PEOPLE)
        finally:
            await db.close()
        phones = Phones(client, channel_id)
        stops: dict[str, Stop] = {}
        for action in ("pause", "cancel"):
            marker = tag()
            created = await client.post(
                "/api/v1/broadcasts", json={"channel_id": channel_id, "text": f"{action} {marker}"}
            )
            assert created.status_code == 201, created.text
            broadcast_id = created.json()["id"]
            assert (await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")).status_code == 200
            await wait_progress(client, broadcast_id, 4)
            # More than two claims of 8 are out: both workers hold some (two each at most).
            assert await claimed(client, broadcast_id) > 16, "only one worker holds claims"

            asked = now()
            response = await client.post(f"/api/v1/broadcasts/{broadcast_id}/{action}")
            returned = now()
            assert response.status_code == 200, response.text
            await asyncio.sleep(QUIET_S)
            stop = stops[action] = Stop(asked, returned, await arrivals(phones, people, marker))
            assert stop.late == [], f"copies after the {action} returned: {stop.late}"
            assert len(stop.arrivals) < PEOPLE - 5, stop.describe()
            assert await claimed(client, broadcast_id) == 0, "claims were not given back"
            stats = (await get_broadcast(client, broadcast_id))["stats"]
            assert await progressed(client, broadcast_id) == len(stop.arrivals), stats
            if action == "cancel":
                assert stats["skipped"] == PEOPLE - len(stop.arrivals), stats
                assert stats["queued"] == 0, stats
                continue
            assert stats["queued"] == PEOPLE - len(stop.arrivals), stats
            resumed = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
            assert resumed.status_code == 200, resumed.text
            await wait_broadcast_done(client, broadcast_id, timeout=30)
            boxes = await phones.inboxes(people, limit=16)
            counts = {a: len(copies(box, marker)) for a, box in boxes.items()}
            assert set(counts.values()) == {1}, f"not one copy each: {counts}"
    for worker in workers:
        assert worker.process.poll() is None, worker.output[-3000:]
    print(
        "\n[e2e pause workers] "
        + "; ".join(f"{action}: {stop.describe()}" for action, stop in stops.items())
    )
