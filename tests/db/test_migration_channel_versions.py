"""Migration 0008: every channel row gets a version (1), and the tenant-chosen Graph
address (``api_base_url``, now the operator's setting) leaves the stored settings."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database

T = "'2026-12-01 10:00:00'"
OLD = {"phone_number_id": "1001", "api_base_url": "http://127.0.0.1:5432", "throughput": 80}


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db, "0007")
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO workspaces (id, slug, name, settings, created_at)"
                    f" VALUES (7, 'w', 'W', '{{}}', {T})"
                )
            )
            for channel_id, settings in ((21, OLD), (22, {"throughput": 5})):
                await conn.execute(
                    text(
                        "INSERT INTO channels (id, workspace_id, kind, name, settings, status,"
                        f" created_at) VALUES (:id, 7, 'whatsapp', 'W', :settings, 'active', {T})"
                    ),
                    {"id": channel_id, "settings": json.dumps(settings)},
                )
        await upgrade(db)
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT id, version, settings FROM channels ORDER BY id"))
            ).all()
        found = {row.id: (row.version, _json(row.settings)) for row in rows}
        assert found == {
            21: (1, {"phone_number_id": "1001", "throughput": 80}),
            22: (1, {"throughput": 5}),
        }
    finally:
        await db.dispose()


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value  # SQLite: text


async def test_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite:///{tmp_path}/m.db")


async def test_on_postgresql(postgres_url: str) -> None:
    await _check(postgres_url)
