"""Engine creation and the two kinds of transaction: ``read()`` and ``write()``.

SQLite (WAL) needs ``BEGIN IMMEDIATE`` for write transactions: with one claimer and
two webhook writers a plain ``BEGIN`` produced over 100 k "database is locked" errors
in 5 s, ``BEGIN IMMEDIATE`` none (ARCHITECTURE.md). Reads keep a deferred ``BEGIN`` so
they never wait for a writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rundfunk.db.broadcast_signals import BroadcastSignals, take_broadcast_marks
from rundfunk.db.changes import Changes, take_channel_marks, take_marks
from rundfunk.private_files import private_file

_IMMEDIATE = "rundfunk_immediate"

# PostgreSQL: the channel idle workers LISTEN on, and the advisory lock keys (any
# bigint; advisory locks are per database, so one database is one Rundfunk).
WORK_CHANNEL = "rundfunk_work"
MIGRATION_LOCK = 0x52_46_00_01
SCHEDULER_LOCK = 0x52_46_00_02


def async_url(url: str) -> str:
    """Map a plain ``sqlite://`` / ``postgresql://`` URL to its async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine and the transaction helpers every service uses."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                # Owner-only (0600, its directory 0700): SQLite gives its -wal and
                # -shm files the database file's mode.
                private_file(Path(database))
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        # Who watches which workspace, told after each commit that marked one (``changes``).
        self.changes = Changes()
        # Dispatchers of this process, told of pauses and cancels right after the commit.
        self.broadcast_signals = BroadcastSignals()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception.

        Workspaces the transaction marked with ``changes.changed`` are signalled to live
        console pages once it has committed.
        """
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.execution_options(**{_IMMEDIATE: True})
            take_marks(conn)  # marks left by a transaction that rolled back
            take_channel_marks(conn)
            take_broadcast_marks(conn)
            async with conn.begin():
                yield conn
            marked = take_marks(conn)
            channels_marked = take_channel_marks(conn)
            broadcasts_moved = take_broadcast_marks(conn)
        # Before anything else: a paused broadcast's sends must stop before we return.
        self.broadcast_signals.publish(broadcasts_moved)
        self.changes.publish(marked)
        self.changes.publish_channels(channels_marked)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @property
    def libpq_url(self) -> str:
        """The URL in the form asyncpg (and libpq) take: ``postgresql://…``."""
        url = make_url(self.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    @asynccontextmanager
    async def exclusive(self, key: int) -> AsyncIterator[None]:
        """Hold a PostgreSQL advisory lock for the block, on a connection of its own.

        Several processes started together on an empty database must not migrate it
        at once. SQLite needs nothing: its file lock already serialises writers.
        """
        if self.is_sqlite:
            yield
            return
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()

    async def dispose(self) -> None:
        await self.changes.close()
        await self.engine.dispose()


async def notify_work(conn: AsyncConnection) -> None:
    """Wake idle workers when this transaction commits (PostgreSQL ``NOTIFY``).

    PostgreSQL delivers a notification only on commit, and once per transaction however
    often it was sent, so calling this next to the write is "after commit" for free.
    On SQLite there is no other worker to wake (the process wakes its own dispatcher).
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"NOTIFY {WORK_CHANNEL}"))


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
