"""Shared test fixtures: real databases only (SQLite files, and PostgreSQL when reachable)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

PG_ADMIN_URL = os.environ.get("RUNDFUNK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql://", "postgres://"), timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Outside CI an unreachable server skips the test with the reason; in CI (CI=true)
    it fails, because .ci/run starts PostgreSQL.
    """
    name = f"rundfunk_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc}); start it to run this test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
