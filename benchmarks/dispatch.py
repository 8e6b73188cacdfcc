"""Dispatch throughput and worker memory: one ``rundfunk worker`` against the fake Graph API.

Dispatch: one worker process, unthrottled, sends a template broadcast (personalized
with each person's name) to every contact through the fake WhatsApp Cloud API on
loopback, recording every outcome in the database. The baseline in the same run is a
bare aiohttp loop that posts the very same request bodies, with the worker's
concurrency (``send_concurrency``, 64), to the same fake server, and stores nothing.
The ratio is what Rundfunk's claim, render, limiter and bookkeeping leave of the raw
HTTP rate. Both engines are measured.

Memory: the worker's peak resident set (``VmHWM`` in /proc) while it sends
broadcasts of growing size on SQLite. It should stay flat: the worker holds a chunk
or two of deliveries, never the audience.

    .venv/bin/python benchmarks/dispatch.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    ACCESS_TOKEN,
    FakeServer,
    Setup,
    fake_server,
    fresh_database,
    new_broadcast,
    seed_contacts,
    whatsapp_workspace,
)
from _workers import RunResult, describe, one_broadcast, send_with_workers
from sqlalchemy import select

from rundfunk.channels.whatsapp import payload
from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts
from rundfunk.services.dispatch import SendJob

FULL_RECIPIENTS = 100_000
QUICK_RECIPIENTS = 20_000
MEMORY_SIZES_FULL = (10_000, 100_000, 1_000_000)
MEMORY_SIZES_QUICK = (QUICK_RECIPIENTS, 100_000)  # the smaller one is the dispatch run


async def _bodies(setup: Setup, recipients: int) -> Iterator[dict[str, Any]]:
    """The request bodies the worker sends, built by the WhatsApp payload code."""
    db = Database(setup.url)
    try:
        broadcast_id = await new_broadcast(db, setup)
        async with db.read() as conn:
            content = await conn.scalar(
                select(broadcasts.c.content).where(broadcasts.c.id == broadcast_id)
            )
    finally:
        await db.dispose()

    def generate() -> Iterator[dict[str, Any]]:
        for i in range(recipients):
            job = SendJob(
                table="deliveries",
                id=i + 1,
                workspace_id=setup.workspace_id,
                channel_id=setup.channel_id,
                contact_id=i + 1,
                attempts=1,
                text=None,
                media_url=None,
                contact={"id": i + 1, "address": f"49{i:010d}", "name": f"Person {i}"},
                workspace={"name": "bench"},
                content=content,
            )
            yield payload.build(job.message(None))

    return generate()


async def raw_rate(
    setup: Setup, fake: FakeServer, recipients: int, concurrency: int
) -> tuple[float, float]:
    """(messages per second, client CPU µs per message) of a bare aiohttp loop posting
    the same bodies; nothing stored."""
    bodies = list(await _bodies(setup, recipients))
    url = f"{fake.url}/v21.0/1001/messages"
    queue = iter(bodies)
    failures = 0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for body in queue:
            async with session.post(url, json=body) as response:
                answer = await response.json(content_type=None)
                if response.status != 200 or not answer["messages"][0]["id"]:
                    failures += 1

    connector = aiohttp.TCPConnector(limit=128, keepalive_timeout=60)
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if failures:
        raise AssertionError(f"{failures} raw sends failed")
    return recipients / elapsed, cpu / recipients * 1e6


async def dispatch_pair(engine: str, recipients: int) -> tuple[RunResult, float, float]:
    """The worker's rate and the bare loop's rate, same fake server, same run."""
    concurrency = Settings().send_concurrency
    async with fresh_database(engine) as url, fake_server() as fake:
        setup = await whatsapp_workspace(url, fake.url)
        await seed_contacts(setup, 0, recipients)
        raw, raw_cpu = await raw_rate(setup, fake, recipients, concurrency)
        print(
            f"  bare aiohttp loop ({engine} run): {raw:,.0f} msg/s, "
            f"client CPU per message {raw_cpu:,.0f} us",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="rundfunk-workers-") as tmp:
            result = await send_with_workers(setup, fake, recipients, 1, Path(tmp))
        print(f"  worker: {describe(result)}", flush=True)
    return result, raw, raw_cpu


async def measure_async(quick: bool) -> dict[str, Any]:
    recipients = QUICK_RECIPIENTS if quick else FULL_RECIPIENTS
    figures: dict[str, Any] = {"dispatch_recipients": recipients}
    peaks: dict[int, float] = {}
    for engine in ("sqlite", "postgres"):
        result, raw, raw_cpu = await dispatch_pair(engine, recipients)
        figures[f"dispatch_msgs_per_s_{engine}"] = result.msgs_per_s
        figures[f"dispatch_raw_msgs_per_s_{engine}"] = round(raw, 1)
        figures[f"dispatch_vs_raw_{engine}"] = round(result.msgs_per_s / raw, 3)
        figures[f"dispatch_worker_cpu_us_per_msg_{engine}"] = result.worker_cpu_us_per_msg
        figures[f"dispatch_raw_cpu_us_per_msg_{engine}"] = round(raw_cpu, 1)
        figures[f"dispatch_fake_cpu_us_per_msg_{engine}"] = result.fake_cpu_us_per_msg
        if engine == "sqlite":
            peaks[recipients] = max(result.peak_rss_mb)
    figures["dispatch_msgs_per_s"] = figures["dispatch_msgs_per_s_sqlite"]
    figures["dispatch_vs_raw"] = figures["dispatch_vs_raw_sqlite"]
    for size in MEMORY_SIZES_QUICK if quick else MEMORY_SIZES_FULL:
        if size not in peaks:
            result = await one_broadcast("sqlite", size)
            print(f"  memory: {describe(result)}", flush=True)
            peaks[size] = max(result.peak_rss_mb)
    largest = max(peaks)
    figures["worker_peak_rss_mb"] = peaks[largest]
    figures["worker_peak_rss_recipients"] = largest
    figures["worker_peak_rss_by_size"] = {str(size): peaks[size] for size in sorted(peaks)}
    return figures


def measure(quick: bool) -> dict[str, Any]:
    return asyncio.run(measure_async(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k dispatch, memory up to 100k")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))
