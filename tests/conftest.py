"""Shared test fixtures: real databases only — SQLite files, or PostgreSQL databases when
``RUNDFUNK_TEST_ENGINE=postgresql`` (see ``engines``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import engines


def pytest_report_header() -> str:
    where = f" ({engines.PG_BASE_URL})" if engines.ON_POSTGRES else ""
    return f"rundfunk test engine: {engines.ENGINE}{where}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``RUNDFUNK_TEST_SECOND_PASS=1`` (``.ci/run``'s PostgreSQL pass): leave out the tests
    that always run on PostgreSQL (``postgres_url``), whatever the engine — the first
    pass ran them already, and they include the longest end-to-end drills."""
    if not os.environ.get("RUNDFUNK_TEST_SECOND_PASS"):
        return
    again = [item for item in items if "postgres_url" in getattr(item, "fixturenames", ())]
    if again:
        config.hook.pytest_deselected(items=again)
        items[:] = [item for item in items if item not in again]


def pytest_sessionfinish() -> None:
    engines.drop_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = engines.summary()
    if line:
        terminalreporter.write_line(line)


def _unreachable(exc: Exception) -> None:
    """Outside CI an unreachable server skips the test with the reason; in CI (CI=true)
    it fails, because .ci/run starts PostgreSQL."""
    message = f"{exc}; start it to run this test"
    if os.environ.get("CI") or engines.ON_POSTGRES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards (on both engines:
    for tests of PostgreSQL itself)."""
    try:
        with engines.postgres_database(migrated=False) as url:
            yield url
    except engines.PostgresUnavailable as exc:
        _unreachable(exc)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh database of the engine under test for one test: a SQLite file in
    ``tmp_path``, or a migrated PostgreSQL database dropped afterwards."""
    try:
        with engines.fresh_database(tmp_path) as url:
            yield url
    except engines.PostgresUnavailable as exc:
        _unreachable(exc)


REDIS_TEST_URL = os.environ.get("RUNDFUNK_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis database 15 (``RUNDFUNK_TEST_REDIS``), emptied before and after the test.
    Unreachable: skipped outside CI, failed in CI (``.ci/run`` starts Redis)."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        client.close()
        _unreachable(Exception(f"Redis at {REDIS_TEST_URL} is unreachable ({exc})"))
    try:
        yield REDIS_TEST_URL
    finally:
        client.flushdb()
        client.close()
