"""Fan-out: how long starting a broadcast takes as the audience grows (both engines).

``send_broadcast`` materialises the audience into one ``deliveries`` row per person
(``services.broadcasts._fan_out``, one ``INSERT … SELECT``). This measures the whole
call a user or the scheduler makes, on a fresh database per size, with the contacts
seeded in bulk beforehand (not measured). The figure is the fan-out transaction
(claim, ``INSERT … SELECT``, totals, commit); one whole ``send_broadcast`` call (with
the checks, the audit entry and reading the broadcast back with its per-status
counts) is shown beside it. Sizes below 1 M are fanned out three times and the
median is kept, which steadies the figures on a busy machine. Cost per
recipient should stay about flat as the audience grows tenfold: the fan-out is linear.

    .venv/bin/python benchmarks/fanout.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from _common import Setup, fresh_database, seed_contacts
from sqlalchemy import func, select

from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, deliveries
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services.actors import system_actor
from rundfunk.services.channels import create_channel
from rundfunk.services.workspaces import create_workspace

ENGINES = ("sqlite", "postgres")
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


async def _sandbox_workspace(url: str) -> Setup:
    """Fan-out does not depend on the channel: the sandbox needs no server."""
    db = Database(url)
    try:
        workspace_id = await create_workspace(db, slug="fanout")
        channel = await create_channel(
            db, actor=system_actor(workspace_id), kind="sandbox", name="fanout"
        )
    finally:
        await db.dispose()
    return Setup(url, workspace_id, int(channel["id"]))


async def _fan_out_once(db: Database, setup: Setup, *, whole_call: bool) -> tuple[float, int]:
    """Seconds and rows of one start: the fan-out transaction, or the whole service call.

    The transaction is what ``send_broadcast`` commits (claim, ``INSERT … SELECT``,
    totals); the whole call adds the checks, the audit entry and reading the
    broadcast back with its per-status counts.
    """
    created = await broadcast_service.create_broadcast(
        db, actor=setup.actor, channel_id=setup.channel_id, text="Hallo {{ contact.name }}"
    )
    broadcast_id = int(created["id"])
    started = time.perf_counter()
    if whole_call:
        sent = await broadcast_service.send_broadcast(
            db, actor=setup.actor, broadcast_id=broadcast_id
        )
        return time.perf_counter() - started, int(sent["stats"]["total"])
    async with db.write() as conn:
        row = (await conn.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id))).one()
        total = await broadcast_service._fan_out(conn, row)
    return time.perf_counter() - started, total


async def fan_out_seconds(engine: str, size: int, repeats: int) -> tuple[float, float]:
    """(median fan-out transaction, one whole ``send_broadcast``) seconds for ``size``."""
    async with fresh_database(engine) as url:
        setup = await _sandbox_workspace(url)
        await seed_contacts(setup, 0, size)
        db = Database(url)
        timings: list[float] = []
        try:
            for attempt in range(repeats + 1):
                seconds, total = await _fan_out_once(db, setup, whole_call=attempt == repeats)
                if total != size:
                    raise AssertionError(f"fan-out made {total} rows, not {size}")
                timings.append(seconds)
            async with db.read() as conn:
                rows = await conn.scalar(select(func.count()).select_from(deliveries))
            if rows != size * (repeats + 1):
                raise AssertionError(f"{rows} delivery rows, expected {size * (repeats + 1)}")
        finally:
            await db.dispose()
    return statistics.median(timings[:-1]), timings[-1]


async def measure_async(quick: bool) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    table: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for engine in ENGINES:
        for size in sizes:
            repeats = 1 if size >= 1_000_000 else 3
            seconds, whole = await fan_out_seconds(engine, size, repeats)
            row = {
                "engine": engine,
                "recipients": size,
                "seconds": round(seconds, 3),
                "us_per_recipient": round(seconds / size * 1e6, 2),
                "send_broadcast_call_s": round(whole, 3),
            }
            table.append(row)
            print(
                f"  fan-out {engine:8} {size:>9,}: {seconds:7.3f} s "
                f"({row['us_per_recipient']:.2f} us/recipient; whole send_broadcast call "
                f"{whole:.3f} s)",
                flush=True,
            )
        one_million = next(
            (r["seconds"] for r in table if r["engine"] == engine and r["recipients"] == 10**6),
            None,
        )
        figures[f"fanout_1m_s_{engine}"] = one_million
    figures["fanout_table"] = table
    return figures


def measure(quick: bool) -> dict[str, Any]:
    return asyncio.run(measure_async(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))
