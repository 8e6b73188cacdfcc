"""Diagnosis, not a figure: how long each step of a send holds its concurrency slot.

The dispatcher sends with at most ``send_concurrency`` (64) sends in flight, and a
send holds its slot through the limiter, the last-moment consent check and the HTTP
request. Throughput is then about 64 / (time a slot is held). This runs one worker
in this process against the fake Graph API process and wraps those steps with
timers (the code itself is unchanged; only timing is added around it), so a slow
dispatch can be traced to the step that holds the slots.

    .venv/bin/python benchmarks/_slot_profile.py sqlite 20000 [--latency 0.2] [--redis URL]
        [--workers 2]   # several runtimes in this one process (PostgreSQL)

Means are wall-clock time per call, so on a CPU-saturated process they include the
event loop's own delay in waking each await.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from _common import (
    SECRET_KEY,
    fake_server,
    fresh_database,
    new_broadcast,
    seed_contacts,
    whatsapp_workspace,
)

import rundfunk.worker.dispatcher as dispatcher_module
from rundfunk.channels.whatsapp.channel import WhatsAppChannel
from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.worker.consent import ConsentGate
from rundfunk.worker.runtime import Runtime

SECONDS: defaultdict[str, float] = defaultdict(float)
CALLS: Counter[str] = Counter()


def timed(label: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - started
            CALLS[label] += 1

    return wrapper


def instrument() -> None:
    from rundfunk.services import dispatch

    steps: list[tuple[Any, str, str]] = [
        (ConsentGate, "allows", "consent check"),
        (WhatsAppChannel, "send", "HTTP send"),
        (dispatcher_module.Dispatcher, "_acquire", "limiter"),
        (dispatcher_module.Dispatcher, "_send", "whole send (with slot wait)"),
        (dispatcher_module, "record", "record chunk"),
        (dispatch, "claim", "claim chunk"),
    ]
    for owner, name, label in steps:
        setattr(owner, name, timed(label, getattr(owner, name)))


async def run(
    engine: str, recipients: int, latency: float, redis_url: str | None, workers: int
) -> None:
    instrument()
    async with fresh_database(engine) as url, fake_server(latency) as fake:
        setup = await whatsapp_workspace(url, fake.url)
        await seed_contacts(setup, 0, recipients)
        settings = Settings(
            database_url=url,
            secret_key=SECRET_KEY,
            demo=False,
            redis_url=redis_url,
            whatsapp_api_base_url=fake.url,
        )
        # Several runtimes share this process's loop: fair while the CPU is not the limit.
        runtimes = [await Runtime.create(settings, run_worker=True) for _ in range(workers)]
        db = Database(url)
        try:
            broadcast_id = await new_broadcast(db, setup)
            started = time.perf_counter()
            await broadcast_service.send_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
            while sum(r.dispatcher.sent for r in runtimes) < recipients:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            for runtime in runtimes:
                await runtime.close()
            await db.dispose()
    rate = recipients / elapsed
    print(
        f"{engine}, {workers} runtime(s), {recipients:,} recipients, latency {latency} s: "
        f"{rate:,.0f} msg/s"
    )
    for label in SECONDS:
        mean = SECONDS[label] / CALLS[label] * 1000
        print(f"  {label:28} {CALLS[label]:7,} calls, mean {mean:8.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine", choices=("sqlite", "postgres"))
    parser.add_argument("recipients", type=int)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--redis", default=None, help="use the Redis limiter at this URL")
    parser.add_argument("--workers", type=int, default=1, help="runtimes in this process")
    args = parser.parse_args()
    asyncio.run(run(args.engine, args.recipients, args.latency, args.redis, args.workers))
