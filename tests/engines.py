"""Which database engine the suite runs on, and fresh databases of it for tests.

``RUNDFUNK_TEST_ENGINE=postgresql`` switches every fixture that creates a database
from a SQLite file in ``tmp_path`` to a fresh PostgreSQL database (``.ci/run`` runs the
suite once per engine). The run migrates one template database, ``rundfunk_test_<pid>``;
a test gets a copy of it, ``rundfunk_test_<pid>_<n>`` (``CREATE DATABASE … TEMPLATE``),
which is emptied after the test and handed to the next one (see ``postgres_database``
for the measurements). Everything is dropped at the end of the run; databases left
behind by a run that was killed (its pid is gone) are dropped when the next run starts.

The calls run on a thread of their own because a fixture may be set up while
Playwright's sync API holds an event loop in the test thread. (Importable as
``engines`` because pytest's default ``prepend`` import mode puts ``tests/`` on
``sys.path``.)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

ENGINE = (os.environ.get("RUNDFUNK_TEST_ENGINE") or "sqlite").lower()
if ENGINE not in {"sqlite", "postgresql"}:
    raise RuntimeError(f"RUNDFUNK_TEST_ENGINE must be sqlite or postgresql, not {ENGINE!r}")
ON_POSTGRES = ENGINE == "postgresql"

# The server's maintenance database: CREATE / DROP DATABASE run from a connection to it.
PG_ADMIN_URL = os.environ.get("RUNDFUNK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_BASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0]
PREFIX = "rundfunk_test_"
_OURS = re.compile(rf"^{PREFIX}(\d+)(?:_\d+)?$")

T = TypeVar("T")
_counter = itertools.count(1)
_template: str | None = None
_template_lock = threading.Lock()
_template_schema: list[str] = []  # the template's schema version (``_schema``)
_pool: list[str] = []  # migrated databases emptied after their test, ready for the next
# What the databases cost this run: shown at the end (``summary``).
_spent = {"used": 0, "created": 0, "seconds": 0.0}


class PostgresUnavailable(Exception):
    """The PostgreSQL server cannot be reached (the caller skips or fails the test)."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a thread with its own event loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="rundfunk-test-pg")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _admin(*statements: str) -> None:
    try:
        conn = await asyncpg.connect(_libpq(PG_ADMIN_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise PostgresUnavailable(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc})") from exc
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _drop_orphans() -> None:
    """Drop test databases whose run has ended without cleaning up (killed, crashed)."""
    conn = await asyncpg.connect(_libpq(PG_ADMIN_URL), timeout=5)
    try:
        names = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
        for name in names:
            match = _OURS.match(name)
            if match and not _alive(int(match.group(1))):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _url(name: str) -> str:
    return f"{PG_BASE_URL}/{name}"


def _migrated_template() -> str:
    """This run's migrated template database, made on first use."""
    global _template
    with _template_lock:
        if _template is None:
            name = f"{PREFIX}{os.getpid()}"
            _run(
                _admin(
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
                )
            )
            _run(_drop_orphans())
            _run(_migrate(_url(name)))
            _template_schema.append(_run(_schema(_url(name))))
            _template = name
        return _template


async def _migrate(url: str) -> None:
    from rundfunk.db.migrate import upgrade
    from rundfunk.db.session import Database

    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()  # a template must have no connections when it is copied


def drop_all() -> None:
    """End of the run: drop the template and the pooled databases (``pytest_sessionfinish``)."""
    global _template
    with _template_lock:
        names = [*_pool, *([_template] if _template else [])]
        _pool.clear()
        _template = None
    if names:
        _run(_admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names)))


async def _schema(url: str) -> str:
    """The migration revision and the tables: a test that changed either (a readiness
    test sets an old revision) leaves a database that is dropped, not reused."""
    conn = await asyncpg.connect(_libpq(url), timeout=5)
    try:
        revision = await conn.fetchval("SELECT string_agg(version_num, ',') FROM alembic_version")
        tables = await conn.fetchval(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
            " WHERE schemaname = 'public'"
        )
        return f"{revision}|{tables}"
    except asyncpg.PostgresError as exc:
        return f"unreadable: {exc}"
    finally:
        await conn.close()


async def _reset(name: str) -> bool:
    """Empty every table of ``name`` and restart its sequences: as fresh as a new copy.

    Its connections are ended first (a test may leave a pool open, a killed server its
    sessions), which also ends their advisory locks and LISTENs. False (nothing done)
    when the test changed the schema: then the database is dropped instead.
    """
    from rundfunk.db.tables import metadata

    admin = await asyncpg.connect(_libpq(PG_ADMIN_URL), timeout=5)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    if await _schema(_url(name)) != _template_schema[0]:
        return False
    conn = await asyncpg.connect(_libpq(_url(name)), timeout=5)
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        } - {"alembic_version"}
        # Referencing tables first; a table no longer in the code (none today) before all.
        declared = [t.name for t in reversed(metadata.sorted_tables) if t.name in tables]
        ordered = sorted(tables - set(declared)) + declared
        sequences = [
            r["sequencename"]
            for r in await conn.fetch(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
        ]
        async with conn.transaction():
            for table in ordered:
                await conn.execute(f'DELETE FROM "{table}"')
            for sequence in sequences:
                await conn.execute("SELECT setval($1::regclass, 1, false)", f'"{sequence}"')
    finally:
        await conn.close()
    return True


def _libpq(url: str) -> str:
    return url.replace("postgresql://", "postgres://", 1)


@contextmanager
def postgres_database(*, migrated: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (migrated, or empty); its URL.

    A migrated one is a copy of the run's template, and after the test it is emptied
    (``_reset``) and kept for the next test instead of dropped: on this machine a
    ``CREATE DATABASE … TEMPLATE`` took 0.2–0.4 s once other work kept the disk busy
    (fsync of every file), emptying the tables ~3 ms. An empty one is made and dropped.
    """
    started = time.perf_counter()
    name = ""
    if migrated:
        template = _migrated_template()
        with _template_lock:
            name = _pool.pop() if _pool else ""
        if not name:
            name = f"{PREFIX}{os.getpid()}_{next(_counter)}"
            _run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            _spent["created"] += 1
    else:
        name = f"{PREFIX}{os.getpid()}_{next(_counter)}"
        _run(_admin(f'CREATE DATABASE "{name}"'))
        _spent["created"] += 1
    _spent["seconds"] += time.perf_counter() - started
    _spent["used"] += 1
    reusable = False
    try:
        yield _url(name)
        reusable = migrated
    finally:
        started = time.perf_counter()
        try:
            if reusable and _run(_reset(name)):
                with _template_lock:
                    _pool.append(name)
            else:
                _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception:
            _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            raise
        finally:
            _spent["seconds"] += time.perf_counter() - started


def summary() -> str | None:
    """One line on the PostgreSQL databases this run used, or None if it used none."""
    if not _spent["used"]:
        return None
    return (
        f"PostgreSQL: {_spent['used']} fresh databases ({_spent['created']} created, "
        f"the rest emptied and reused); {_spent['seconds']:.1f} s spent on them"
    )


@contextmanager
def fresh_database(directory: Path, filename: str = "rundfunk.db") -> Iterator[str]:
    """A fresh database of the engine under test; its URL.

    On SQLite the file ``directory/filename``, migrated by whoever opens it first (as in
    production); on PostgreSQL a copy of the run's migrated template, where that first
    migration finds nothing to do.
    """
    if not ON_POSTGRES:
        yield f"sqlite:///{directory}/{filename}"
        return
    with postgres_database(migrated=True) as url:
        yield url
