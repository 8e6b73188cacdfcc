"""A real Rundfunk for the service and worker tests: no mocks of our code.

``open_world`` migrates a fresh database (a SQLite file, or PostgreSQL with
``RUNDFUNK_TEST_ENGINE=postgresql``: see ``engines``), creates a workspace with an owner and a
sandbox channel, and wires the real ``ChannelRegistry`` + ``DatabaseSandbox`` that
the dispatcher uses in production. Subscribers are made the way people make
themselves: a simulated phone writes START. (Importable as ``service_world`` because
pytest's default ``prepend`` import mode puts ``tests/`` on ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import Select

from engines import fresh_database
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, deliveries, messages
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services import sandbox, topics, workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channels import create_channel
from rundfunk.services.inbound import Outcome
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.dispatcher import Dispatcher

# Retries within milliseconds so a test sees many attempts in well under a second.
FAST_RETRIES = RetryPolicy(
    max_attempts=20, base_seconds=0.01, cap_seconds=0.05, pause_min_sample=10_000
)


@dataclass
class World:
    db: Database
    workspace_id: int
    owner: Actor
    channel_id: int
    sandbox: DatabaseSandbox
    registry: ChannelRegistry

    def actor(self, role: Role) -> Actor:
        return Actor(workspace_id=self.workspace_id, role=role, label=f"test:{role.value}")

    async def add_channel(
        self, name: str = "second", settings: Mapping[str, Any] | None = None
    ) -> int:
        channel = await create_channel(
            self.db, actor=self.owner, kind="sandbox", name=name, settings=settings
        )
        return int(channel["id"])

    async def add_topic(self, key: str, name: str | None = None) -> int:
        topic = await topics.create_topic(self.db, actor=self.owner, key=key, name=name or key)
        return int(topic["id"])

    async def write(
        self, address: str, text: str, *, channel_id: int | None = None, name: str | None = None
    ) -> Outcome:
        """A simulated phone writes to the business."""
        return await sandbox.phone_writes(
            self.db, channel_id=channel_id or self.channel_id, address=address, text=text, name=name
        )

    async def subscriber(
        self,
        address: str,
        *,
        name: str | None = None,
        topic: str | None = None,
        channel_id: int | None = None,
    ) -> int:
        """A person who opted in by writing START (or START <topic>); returns the contact id."""
        text = f"START {topic}" if topic else "START"
        outcome = await self.write(address, text, channel_id=channel_id, name=name)
        return outcome.contact_id

    async def texts(self, address: str, *, channel_id: int | None = None) -> list[str | None]:
        """What this simulated phone received, oldest first."""
        inbox = await sandbox.phone_inbox(
            self.db, channel_id=channel_id or self.channel_id, address=address
        )
        return [item["text"] for item in inbox]

    async def send(
        self, text: str, *, topic_keys: list[str] | None = None, channel_id: int | None = None
    ) -> int:
        """Create a broadcast and start it (fan-out); returns its id."""
        created = await broadcast_service.create_broadcast(
            self.db,
            actor=self.owner,
            channel_id=channel_id or self.channel_id,
            text=text,
            topic_keys=topic_keys,
        )
        await broadcast_service.send_broadcast(
            self.db, actor=self.owner, broadcast_id=created["id"]
        )
        return int(created["id"])

    async def rows(self, query: Select[Any]) -> list[Any]:
        async with self.db.read() as conn:
            return list((await conn.execute(query)).all())

    async def scalar(self, query: Select[Any]) -> Any:
        async with self.db.read() as conn:
            return await conn.scalar(query)

    async def deliveries_of(self, broadcast_id: int) -> list[Any]:
        return await self.rows(
            select(deliveries)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .order_by(deliveries.c.id)
        )

    async def broadcast(self, broadcast_id: int) -> Any:
        return (await self.rows(select(broadcasts).where(broadcasts.c.id == broadcast_id)))[0]

    async def queued_messages(self) -> int:
        return int(
            await self.scalar(
                select(func.count())
                .select_from(messages)
                .where(messages.c.direction == "out", messages.c.status.in_(("queued", "sending")))
            )
        )

    async def drain_outbox(self) -> None:
        """Send the queued START/STOP confirmations, so a test can watch broadcasts alone."""
        async with running(self.dispatcher()):
            await wait_until(lambda: self._outbox_empty(), what="confirmations sent")

    async def _outbox_empty(self) -> bool:
        return await self.queued_messages() == 0

    def dispatcher(self, policy: RetryPolicy = FAST_RETRIES, **options: Any) -> Dispatcher:
        options.setdefault("poll_seconds", 0.02)
        return Dispatcher(self.db, self.registry, policy=policy, **options)

    async def is_done(self, broadcast_id: int, status: str = "done") -> bool:
        """The scheduler's closing step, then: has the broadcast finished (as ``status``)?"""
        await broadcast_service.finish_completed(self.db)
        return str((await self.broadcast(broadcast_id)).status) == status


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    """The dispatcher's real loop in a task; stopped (and its chunks finished) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


@asynccontextmanager
async def open_world(
    tmp_path: Path, *, whatsapp_api_base_url: str | None = None
) -> AsyncIterator[World]:
    """``whatsapp_api_base_url``: the operator's Graph address (a fake Graph server)."""
    with fresh_database(tmp_path) as url:
        async with _open_world(url, whatsapp_api_base_url) as world:
            yield world


@asynccontextmanager
async def _open_world(url: str, whatsapp_api_base_url: str | None = None) -> AsyncIterator[World]:
    db = Database(url)
    await upgrade(db)
    workspace_id = await workspaces.create_workspace(db, slug="acme", name="Acme")
    member_id = await workspaces.create_member(
        db, workspace_id=workspace_id, email="owner@acme.test", role=Role.OWNER
    )
    owner = Actor(
        workspace_id=workspace_id, role=Role.OWNER, label=f"member:{member_id}", member_id=member_id
    )
    channel = await create_channel(db, actor=owner, kind="sandbox", name="Sandbox")
    platform = DatabaseSandbox(db)
    registry = ChannelRegistry(
        db,
        box=SecretBox("test key"),
        sandbox=platform,
        **({"whatsapp_api_base_url": whatsapp_api_base_url} if whatsapp_api_base_url else {}),
    )
    try:
        yield World(db, workspace_id, owner, int(channel["id"]), platform, registry)
    finally:
        await registry.close()
        await db.dispose()
