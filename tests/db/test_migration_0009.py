"""Migration 0009 on a database with contacts in it: existing people are not blocked,
have counted nothing, and keep their data; the counter counts; a downgrade keeps them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, text

from rundfunk.db.migrate import alembic_config, current_revision, upgrade
from rundfunk.db.session import Database


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db, "0008")
        now = datetime(2026, 12, 1, 12, 0)
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO workspaces (id, slug, name, settings, created_at)"
                    " VALUES (1, 'w', 'W', '{}', :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO channels (id, workspace_id, kind, name, settings, status,"
                    " created_at) VALUES (1, 1, 'sandbox', 'S', '{}', 'active', :now)"
                ),
                {"now": now},
            )
            for n, blocked in ((1, False), (2, True)):
                await conn.execute(
                    text(
                        "INSERT INTO contacts (id, workspace_id, channel_id, address, attributes,"
                        " tags, status, blocked, created_at, updated_at)"
                        " VALUES (:id, 1, 1, :address, '{}', '[]', 'subscribed', :blocked,"
                        " :now, :now)"
                    ),
                    {"id": n, "address": f"49{n}", "blocked": blocked, "now": now},
                )
        await upgrade(db, "0009")
        async with db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, address, blocked, blocked_at, blocked_messages"
                        " FROM contacts ORDER BY id"
                    )
                )
            ).all()
            assert [tuple(r) for r in rows] == [
                (1, "491", False, None, 0),
                (2, "492", True, None, 0),
            ]
            await conn.execute(
                text(
                    "UPDATE contacts SET blocked_messages = blocked_messages + 3,"
                    " blocked_at = :at WHERE id = 2"
                ),
                {"at": datetime(2026, 12, 1, 13, 0)},
            )
            count = await conn.scalar(text("SELECT blocked_messages FROM contacts WHERE id = 2"))
            assert count == 3
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0008)
        assert await current_revision(db) == "0008"
        async with db.engine.begin() as conn:
            kept = (await conn.execute(text("SELECT id, address FROM contacts ORDER BY id"))).all()
        assert [tuple(r) for r in kept] == [(1, "491"), (2, "492")]
        await upgrade(db)  # and up again, to the head
        assert await current_revision(db) == "0009"
    finally:
        await db.dispose()


def _downgrade_to_0008(sync: Connection) -> None:
    command.downgrade(alembic_config(sync), "0008")


async def test_migration_0009_on_sqlite_with_data(tmp_path: Path) -> None:
    await _check(f"sqlite:///{tmp_path}/m.db")


async def test_migration_0009_on_postgresql_with_data(postgres_url: str) -> None:
    await _check(postgres_url)
