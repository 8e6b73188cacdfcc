"""Live change signals (``db.changes``): sent after commit, never for a rollback, only to
watchers of the marked workspace, and across processes through Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from rundfunk.db.changes import changed
from rundfunk.db.session import Database


async def _commit_marking(db: Database, *workspace_ids: int) -> None:
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
        for workspace_id in workspace_ids:
            changed(conn, workspace_id)


async def test_a_watcher_is_woken_after_the_commit_only(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.changes.watch(1) as mine, db.changes.watch(2) as other:
            async with db.write() as conn:
                changed(conn, 1)
                assert not mine.is_set(), "signalled before the commit"
            assert mine.is_set()
            assert not other.is_set(), "another workspace's watcher was woken"
    finally:
        await db.dispose()


async def test_a_rolled_back_transaction_signals_nothing(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.changes.watch(1) as mine:
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    changed(conn, 1)
                    raise RuntimeError("roll back")
            assert not mine.is_set()
            # The pooled connection's next transaction does not inherit the mark.
            await _commit_marking(db)
            assert not mine.is_set()
            await _commit_marking(db, 1)
            assert mine.is_set()
    finally:
        await db.dispose()


async def test_a_watcher_stops_being_told_when_it_leaves(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.changes.watch(1) as gone:
            pass
        await _commit_marking(db, 1)
        assert not gone.is_set()
    finally:
        await db.dispose()


async def test_redis_carries_signals_from_one_process_to_another(
    database_url: str, redis_url: str
) -> None:
    node_a, node_b = Database(database_url), Database(database_url)
    try:
        await node_a.changes.connect(redis_url)
        await node_b.changes.connect(redis_url)
        assert node_a.changes.shared and node_b.changes.shared
        with node_b.changes.watch(7) as on_b, node_b.changes.watch(8) as not_marked:
            started = time.monotonic()
            await _commit_marking(node_a, 7)
            await asyncio.wait_for(on_b.wait(), timeout=5)
            took = time.monotonic() - started
            await asyncio.sleep(0.1)
            assert not not_marked.is_set()
        assert took < 1.0, f"the signal took {took:.3f} s"
    finally:
        await node_a.dispose()
        await node_b.dispose()


async def test_signals_in_a_burst_are_coalesced_into_few_publishes(
    database_url: str, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    db = Database(database_url)
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe("rundfunk:changes")
        await db.changes.connect(redis_url)
        with db.changes.watch(3) as watched:
            # Commits that land while a publish is under way ride on the next one.
            for _ in range(50):
                db.changes.publish({3, 4})
            await asyncio.wait_for(watched.wait(), timeout=5)
        await asyncio.sleep(0.2)
        published: list[bytes] = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                published.append(message["data"])
        assert published, "nothing was published"
        assert all(set(m.split(b",")) == {b"3", b"4"} for m in published), published
        assert len(published) <= 2, f"{len(published)} publishes for 50 signals"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
        await db.dispose()


async def test_an_unreachable_redis_fails_at_start_with_the_setting_named(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(RuntimeError, match="RUNDFUNK_REDIS_URL: cannot reach Redis"):
            await db.changes.connect("redis://127.0.0.1:1/0")
        assert not db.changes.shared
    finally:
        await db.dispose()
