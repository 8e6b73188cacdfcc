"""How long Pause and Cancel take to stop a broadcast that is sending, at several rates.

A WhatsApp channel on the fake Graph API (150 ms per request, like the real one),
limited to RATE msg/s; a broadcast to 4 s worth of recipients, all of it claimed by
the dispatcher at once. A quarter of the way in it is paused; the figure is the time
from the pause call to the last message the fake accepted (a request already on its
way may land up to one round trip later; none may start after the call returned).
Then it is resumed, and cancelled a quarter further on, measured the same way.
At the end every recipient must have at most one copy.

    .venv/bin/python benchmarks/pause_stop.py [--engine sqlite|postgres] [--rates 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
from _common import (
    SECRET_KEY,
    fake_server,
    fresh_database,
    new_broadcast,
    seed_contacts,
    whatsapp_workspace,
)
from sqlalchemy import select, update

from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.dispatcher import Dispatcher

LATENCY = 0.15
SECONDS = 4.0
# As many sends in flight as the WhatsApp client has connections (128): more would
# queue inside its HTTP pool, where a send counts as started before it leaves.
CONCURRENCY = 128


async def _sent(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_fake/sent") as response:
        response.raise_for_status()
        rows: list[dict[str, Any]] = await response.json()
        return [r for r in rows if (r.get("callback_data") or "").startswith("d:")]


async def _wait_sent(url: str, count: int) -> None:
    while len(await _sent(url)) < count:
        await asyncio.sleep(0.01)


async def _stop(
    db: Database, fake_url: str, setup: Any, broadcast_id: int, action: str
) -> dict[str, float]:
    told: list[float] = []
    db.broadcast_signals.on_moved(lambda _id, _status: told.append(time.time()))
    asked = time.time()
    if action == "pause":
        await broadcast_service.pause_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
    else:
        await broadcast_service.cancel_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
    returned = time.time()
    await asyncio.sleep(1.5)
    times = [r["at"] for r in await _sent(fake_url)]
    last = max(times)
    return {
        "call_ms": 1000 * (returned - asked),
        "committed_ms": 1000 * (told[0] - asked),  # when the dispatcher was told
        "stop_ms": 1000 * (last - asked),
        "after_return": sum(1 for t in times if t > returned),
        "over_round_trip": sum(1 for t in times if t > returned + LATENCY + 0.05),
    }


async def run(engine: str, rate: float) -> dict[str, Any]:
    recipients = max(40, int(rate * SECONDS))
    async with fresh_database(engine) as url, fake_server(latency=LATENCY) as fake:
        setup = await whatsapp_workspace(url, fake.url)
        await seed_contacts(setup, 0, recipients)
        db = Database(url)
        async with db.write() as conn:  # the rate under test, no burst
            stored = await conn.scalar(
                select(channels.c.settings).where(channels.c.id == setup.channel_id)
            )
            limited = {**(stored or {}), "throughput": rate, "burst": 1}
            await conn.execute(
                update(channels).where(channels.c.id == setup.channel_id).values(settings=limited)
            )
        box = SecretBox(SECRET_KEY)
        registry = ChannelRegistry(
            db, box=box, sandbox=DatabaseSandbox(db), whatsapp_api_base_url=fake.url
        )
        dispatcher = Dispatcher(
            db, registry, policy=RetryPolicy(), concurrency=CONCURRENCY, poll_seconds=0.05
        )
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            broadcast_id = await new_broadcast(db, setup)
            await broadcast_service.send_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
            await _wait_sent(fake.url, recipients // 4)
            paused = await _stop(db, fake.url, setup, broadcast_id, "pause")
            await broadcast_service.send_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
            await _wait_sent(fake.url, recipients // 2)
            cancelled = await _stop(db, fake.url, setup, broadcast_id, "cancel")
        finally:
            stop.set()
            await task
            await registry.close()
            await db.dispose()
        copies = Counter(r["to"] for r in await _sent(fake.url))
    return {
        "engine": engine,
        "rate": rate,
        "recipients": recipients,
        "pause": paused,
        "cancel": cancelled,
        "max_copies": max(copies.values()),
    }


def _line(result: dict[str, Any]) -> str:
    parts = [f"{result['engine']:8} {result['rate']:>6.0f} msg/s  {result['recipients']:>5} rcpts"]
    for action in ("pause", "cancel"):
        r = result[action]
        parts.append(
            f"{action}: call {r['call_ms']:.0f} ms (committed after "
            f"{r['committed_ms']:.0f}), last copy {r['stop_ms']:+.0f} ms after the call, "
            f"{r['after_return']} after it returned ({r['over_round_trip']} beyond one "
            f"round trip)"
        )
    parts.append(f"max copies per recipient {result['max_copies']}")
    return " | ".join(parts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="sqlite,postgres")
    parser.add_argument("--rates", default="10,100,1000")
    args = parser.parse_args()
    for engine in args.engine.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            print(_line(await run(engine, rate)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
