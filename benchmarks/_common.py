"""Shared set-up for the scaled-mode benchmarks: databases, the fake server, contacts.

Every benchmark needs the same scaffolding: a fresh database on either engine (a
temporary SQLite file, or a PostgreSQL database created for the run and dropped
afterwards), a workspace with a WhatsApp channel pointed at the fake Graph API
running as its own process on loopback, an approved template synced into our
tables, and many opted-in contacts. Contacts are generated inside the database by one
``INSERT … SELECT`` (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL):
seeding is not what is measured, and a million rows this way take seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import bindparam, select, text, update

from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.db.types import UTCDateTime, utcnow
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services.actors import Actor, system_actor
from rundfunk.services.channels import create_channel
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.services.whatsapp import sync_templates
from rundfunk.services.workspaces import create_workspace

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET_KEY = "rundfunk-benchmark-key"
ACCESS_TOKEN = "bench-token"
APP_SECRET = "bench-secret"
TEMPLATE = "news_update"
# No limit worth the name: the benchmarks measure Rundfunk, not the platform's cap.
UNTHROTTLED = {"throughput": 1_000_000.0, "burst": 1000, "pair_interval_seconds": 0.0}

_SEED_SQLITE = """
WITH RECURSIVE seq(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :stop)
INSERT INTO contacts (workspace_id, channel_id, address, name, attributes, tags, status,
                      blocked, created_at, updated_at)
SELECT :ws, :ch, printf('49%010d', i), 'Person ' || i, '{}', '[]', 'subscribed', 0, :now, :now
FROM seq
"""
_SEED_POSTGRES = """
INSERT INTO contacts (workspace_id, channel_id, address, name, attributes, tags, status,
                      blocked, created_at, updated_at)
SELECT :ws, :ch, '49' || lpad(i::text, 10, '0'), 'Person ' || i, '{}', '[]', 'subscribed',
       false, :now, :now
FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer) - 1) AS i
"""


@contextlib.asynccontextmanager
async def fresh_database(engine: str) -> AsyncIterator[str]:
    """A migrated, empty database URL on ``engine`` ("sqlite" | "postgres"), removed after."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rundfunk-bench-") as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            db = Database(url)
            await upgrade(db)
            await db.dispose()
            yield url
        return
    name = f"rundfunk_bench_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    try:
        db = Database(url)
        await upgrade(db)
        await db.dispose()
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _count() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


_counter = _count()


@dataclass
class FakeServer:
    """The fake Graph API as a child process (its CPU is not the measured process's)."""

    url: str
    process: subprocess.Popen[str]

    async def configure(self, **knobs: Any) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/_fake/config", json=knobs) as response,
        ):
            response.raise_for_status()

    async def add_template(self) -> None:
        body = {"name": TEMPLATE, "language": "de", "body": "Hallo {{1}}, hier sind die News."}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/_fake/templates", json=body) as response,
        ):
            response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/_fake/stats") as response,
        ):
            response.raise_for_status()
            result: dict[str, Any] = await response.json()
            return result


@contextlib.asynccontextmanager
async def fake_server(latency: float = 0.0) -> AsyncIterator[FakeServer]:
    """Start ``python -m rundfunk.testing.fake_graph`` and stop it afterwards."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rundfunk.testing.fake_graph",
            "--access-token",
            ACCESS_TOKEN,
            "--app-secret",
            APP_SECRET,
            "--latency",
            str(latency),
            "--seed",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        if not line.startswith("FAKE_GRAPH_URL="):
            raise RuntimeError(f"fake Graph server did not start: {line!r}")
        server = FakeServer(line.strip().split("=", 1)[1], process)
        await server.add_template()
        yield server
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class Setup:
    url: str
    workspace_id: int
    channel_id: int

    @property
    def actor(self) -> Actor:
        return system_actor(self.workspace_id)


async def whatsapp_workspace(url: str, fake_url: str) -> Setup:
    """A workspace with an unthrottled WhatsApp channel on the fake and its template synced."""
    db = Database(url)
    box = SecretBox(SECRET_KEY)
    try:
        workspace_id = await create_workspace(db, slug="bench")
        actor = system_actor(workspace_id)
        channel = await create_channel(
            db,
            actor=actor,
            kind="whatsapp",
            name="bench",
            config={
                "phone_number_id": "1001",
                "waba_id": "2002",
                "access_token": ACCESS_TOKEN,
                "app_secret": APP_SECRET,
                "api_version": "v21.0",
                "throughput": 1000,
            },
            box=box,
        )
        channel_id = int(channel["id"])
        # The configuration refuses more than the platform's 1,000/s; a benchmark of
        # our own cost lifts the cap directly in the stored settings.
        async with db.write() as conn:
            stored = await conn.scalar(
                select(channels.c.settings).where(channels.c.id == channel_id)
            )
            settings = {**(stored or {}), **UNTHROTTLED}
            await conn.execute(
                update(channels).where(channels.c.id == channel_id).values(settings=settings)
            )
        registry = ChannelRegistry(
            db, box=box, sandbox=DatabaseSandbox(db), whatsapp_api_base_url=fake_url
        )
        try:
            await sync_templates(db, registry, actor=actor, channel_id=channel_id)
        finally:
            await registry.close()
    finally:
        await db.dispose()
    return Setup(url, workspace_id, channel_id)


async def seed_contacts(setup: Setup, start: int, stop: int) -> None:
    """Opted-in contacts ``start`` … ``stop - 1`` (addresses 49 + ten digits), in bulk."""
    db = Database(setup.url)
    statement = text(_SEED_SQLITE if db.is_sqlite else _SEED_POSTGRES).bindparams(
        bindparam("now", type_=UTCDateTime())
    )
    try:
        async with db.write() as conn:
            await conn.execute(
                statement,
                {
                    "start": start,
                    "stop": stop,
                    "ws": setup.workspace_id,
                    "ch": setup.channel_id,
                    "now": utcnow(),
                },
            )
            if not db.is_sqlite:  # fresh statistics, as autovacuum would soon have them
                await conn.execute(text("ANALYZE contacts"))
    finally:
        await db.dispose()


async def new_broadcast(db: Database, setup: Setup) -> int:
    """A template broadcast to everyone on the channel, personalized with the name."""
    created = await broadcast_service.create_broadcast(
        db,
        actor=setup.actor,
        channel_id=setup.channel_id,
        text=None,
        template={
            "name": TEMPLATE,
            "language": "de",
            "body_parameters": ["{{ contact.name }}"],
        },
    )
    return int(created["id"])


def rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident set size of ``pid`` in MB, from /proc (VmHWM, VmRSS)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmHWM", "VmRSS"}:
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmHWM", 0.0), fields.get("VmRSS", 0.0)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_env(url: str, data_dir: str, **extra: str) -> dict[str, str]:
    """The environment of a ``rundfunk worker`` process on ``url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUNDFUNK_")}
    env.update(
        RUNDFUNK_DATABASE_URL=url,
        RUNDFUNK_SECRET_KEY=SECRET_KEY,
        RUNDFUNK_DATA_DIR=data_dir,
        RUNDFUNK_DEMO="false",
        RUNDFUNK_LOG_LEVEL="WARNING",
        **extra,
    )
    return env
