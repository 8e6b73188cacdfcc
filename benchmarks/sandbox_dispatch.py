"""How fast one process delivers a broadcast through the sandbox channel (embedded mode).

Builds N opted-in contacts on a fresh SQLite file, sends one personalized broadcast
through the real dispatcher (claim → render → limiter → sandbox → record) and prints
messages per second. The baseline in the same run is the bare storage cost: the same
number of sandbox receipts written straight to the database in groups of the same
size, with nothing else. Their ratio shows what the dispatcher adds.

    .venv/bin/python benchmarks/sandbox_dispatch.py [--contacts 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, contacts, sandbox_messages
from rundfunk.db.types import utcnow
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services.actors import system_actor
from rundfunk.services.channels import create_channel
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.services.workspaces import create_workspace
from rundfunk.worker.dispatcher import Dispatcher


async def _setup(db: Database, n: int) -> tuple[int, int]:
    await upgrade(db)
    workspace_id = await create_workspace(db, slug="bench")
    actor = system_actor(workspace_id)
    channel = await create_channel(
        db,
        actor=actor,
        kind="sandbox",
        name="bench",
        settings={
            "throughput": 1_000_000,
            "burst": 1000,
            "sandbox": {"delivered_after_s": 3600, "read_after_s": 0},
        },
    )
    now = utcnow()
    async with db.write() as conn:  # benchmark setup: contacts written in bulk
        await conn.execute(
            insert(contacts),
            [
                {
                    "workspace_id": workspace_id,
                    "channel_id": channel["id"],
                    "address": f"49{i:010d}",
                    "name": f"Person {i}",
                    "attributes": {},
                    "tags": [],
                    "status": "subscribed",
                    "blocked": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
    return workspace_id, int(channel["id"])


async def dispatch_run(n: int, directory: Path) -> float:
    db = Database(f"sqlite:///{directory}/dispatch.db")
    workspace_id, channel_id = await _setup(db, n)
    actor = system_actor(workspace_id)
    created = await broadcast_service.create_broadcast(
        db,
        actor=actor,
        channel_id=channel_id,
        text="Hallo {{ contact.name }}, es gibt Neuigkeiten.",
    )
    registry = ChannelRegistry(db, box=SecretBox("bench"), sandbox=DatabaseSandbox(db))
    dispatcher = Dispatcher(db, registry, policy=RetryPolicy(), poll_seconds=0.05)
    stop = asyncio.Event()
    started = time.perf_counter()
    await broadcast_service.send_broadcast(db, actor=actor, broadcast_id=int(created["id"]))
    task = asyncio.create_task(dispatcher.run(stop))
    while True:
        async with db.read() as conn:
            received = await conn.scalar(select(func.count()).select_from(sandbox_messages))
        if received == n:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(broadcasts)) == 1
    await db.dispose()
    return n / elapsed


async def baseline_run(n: int, directory: Path, group: int = 64) -> float:
    """Bare storage: the sandbox receipts alone, committed in groups like the sandbox does."""
    db = Database(f"sqlite:///{directory}/baseline.db")
    _, channel_id = await _setup(db, 1)
    started = time.perf_counter()
    for offset in range(0, n, group):
        async with db.write() as conn:
            now = utcnow()
            await conn.execute(
                insert(sandbox_messages),
                [
                    {
                        "channel_id": channel_id,
                        "address": f"49{i:010d}",
                        "provider_message_id": f"b-{i}",
                        "text": "x",
                        "status": "sent",
                        "received_at": now,
                    }
                    for i in range(offset, min(n, offset + group))
                ],
            )
    elapsed = time.perf_counter() - started
    await db.dispose()
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = await baseline_run(args.contacts, Path(tmp))
        rate = await dispatch_run(args.contacts, Path(tmp))
    print(f"contacts                      {args.contacts}")
    print(f"dispatch_msgs_per_s (sandbox) {rate:,.0f}")
    print(f"bare_storage_rows_per_s       {base:,.0f}")
    print(f"dispatch_vs_bare_storage      {rate / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
