"""Every migration runs on both engines and yields exactly the tables the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from rundfunk.db.migrate import current_revision, upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import metadata


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        await upgrade(db)  # idempotent: a second run changes nothing
        assert await current_revision(db) == "0009"
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            columns = await conn.run_sync(
                lambda sync: {
                    t: {c["name"] for c in inspect(sync).get_columns(t)} for t in metadata.tables
                }
            )
        assert set(metadata.tables) <= names
        for name, table in metadata.tables.items():
            assert columns[name] == {c.name for c in table.columns}, name
    finally:
        await db.dispose()


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite:///{tmp_path}/m.db")


async def test_migrations_on_postgresql(postgres_url: str) -> None:
    await _check(postgres_url)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Database("mysql://x/y")
