"""Webhook ingestion: group commit before the 200, batched application afterwards.

The real app (its lifespan running the committer and the applier), a real database of
the engine under test, signed WhatsApp webhooks over httpx's ASGI transport. Proves
that concurrent webhooks share few transactions, that a webhook is answered only once
its row is committed (and 503 when it cannot be), that rows a crash left are applied
when a fresh app starts, that a forged webhook stores nothing, and that two appliers
(two PostgreSQL nodes) never apply a row twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from rundfunk.channels.whatsapp.webhook import sign
from rundfunk.config import Settings
from rundfunk.db.tables import contacts, webhook_inbox
from rundfunk.services import channels, workspaces
from rundfunk.services import webhook_inbox as inbox
from rundfunk.services.actors import Actor, Role
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.webhook_ingest import GroupCommitter, InboxApplier, WebhookIngestion

APP_SECRET = "ingest-test-app-secret"
PHONE_NUMBER_ID = "3003"


def _envelope(value: dict[str, Any]) -> bytes:
    metadata = {"display_phone_number": "4915100000000", "phone_number_id": PHONE_NUMBER_ID}
    change = {
        "field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
    }
    entry = {"id": "4004", "time": int(time.time()), "changes": [change]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def start_from(address: str) -> bytes:
    """The person writes START: a webhook with one inbound message."""
    message = {
        "from": address,
        "id": f"wamid.start-{address}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": "START"},
    }
    return _envelope(
        {"contacts": [{"profile": {"name": "P"}, "wa_id": address}], "messages": [message]}
    )


def status_of(n: int) -> bytes:
    """A status report on a message nobody here sent (unknown wamid): stored, applied,
    changes nothing."""
    item = {
        "id": f"wamid.unknown-{n}",
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": "4915199999999",
    }
    return _envelope({"statuses": [item]})


@dataclass
class Node:
    """One web process: its runtime, app (lifespan running) and client."""

    runtime: Runtime
    ingestion: WebhookIngestion
    client: httpx.AsyncClient
    channel_id: int

    async def post(self, body: bytes, *, secret: str = APP_SECRET) -> httpx.Response:
        headers = {"X-Hub-Signature-256": sign(secret, body)}
        return await self.client.post(
            f"/webhooks/whatsapp/{self.channel_id}", content=body, headers=headers
        )


async def _whatsapp_channel(runtime: Runtime) -> int:
    workspace_id = await workspaces.create_workspace(runtime.db, slug="ingest")
    actor = Actor(workspace_id, Role.OWNER, "cli")
    config = {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": "4004",
        "access_token": "EAAG-ingest-test",
        "app_secret": APP_SECRET,
    }
    made = await channels.create_channel(
        runtime.db, actor=actor, kind="whatsapp", name="WA", config=config, box=runtime.box
    )
    return int(made["id"])


@asynccontextmanager
async def node(settings: Settings, channel_id: int | None = None) -> AsyncIterator[Node]:
    """Start a web process's runtime and app; the app's lifespan runs the ingestion."""
    runtime = await Runtime.create(settings, run_worker=False)
    try:
        if channel_id is None:
            channel_id = await _whatsapp_channel(runtime)
        app = create_app(settings, runtime=runtime)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Node(runtime, app.state.ingestion, client, channel_id)
    finally:
        await runtime.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, demo=False)


async def _count(runtime: Runtime, table: Any) -> int:
    async with runtime.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def _subscribed(runtime: Runtime) -> int:
    async with runtime.db.read() as conn:
        query = select(func.count()).where(contacts.c.status == "subscribed")
        return int(await conn.scalar(query.select_from(contacts)) or 0)


async def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_concurrent_webhooks_share_few_transactions(settings: Settings) -> None:
    async with node(settings) as web:
        committer = web.ingestion.committer
        bodies = [status_of(n) for n in range(150)] + [
            start_from(f"49171{n:06d}") for n in range(50)
        ]
        answers = await asyncio.gather(*(web.post(body) for body in bodies))
        assert [a.status_code for a in answers] == [200] * 200
        assert {a.text for a in answers} == {'{"ok":true}'}
        # 200 webhooks, each committed before its answer, in a handful of transactions.
        assert committer.stored == 200
        assert committer.commits <= 20, committer.commits
        assert committer.largest >= 10
        await web.ingestion.drain()
        totals = web.ingestion.applier.totals
        assert (totals.webhooks, totals.messages, totals.duplicates) == (200, 50, 0)
        assert await _subscribed(web.runtime) == 50
        assert await _count(web.runtime, webhook_inbox) == 0


async def test_submit_returns_only_once_the_row_is_committed(settings: Settings) -> None:
    # The committer alone (no applier to remove rows): each submit's row must already
    # be readable through another connection when the submit returns.
    runtime = await Runtime.create(settings, run_worker=False)
    try:
        db = runtime.db
        channel_id = await _whatsapp_channel(runtime)
        committer = GroupCommitter(lambda items: inbox.store(db, items), max_delay=0.02)
        bodies = [status_of(n) for n in range(40)]
        seen: list[bool] = []

        async def one(body: bytes) -> None:
            await committer.submit(channel_id, body)
            async with db.read() as conn:
                found = await conn.scalar(select(func.count()).where(webhook_inbox.c.body == body))
            seen.append(found == 1)

        await asyncio.gather(*(one(body) for body in bodies))
        await committer.close()
        assert seen == [True] * 40
        assert 1 <= committer.commits < 40
    finally:
        await runtime.close()


async def test_a_webhook_that_cannot_be_stored_is_503_and_retried_later(
    settings: Settings,
) -> None:
    async with node(settings) as web:
        async with web.runtime.db.write() as conn:  # the inbox table is gone
            await conn.execute(text("ALTER TABLE webhook_inbox RENAME TO inbox_away"))
        failed = await web.post(start_from("4917200000001"))
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "unavailable"
        async with web.runtime.db.write() as conn:
            await conn.execute(text("ALTER TABLE inbox_away RENAME TO webhook_inbox"))
        assert await _count(web.runtime, webhook_inbox) == 0
        assert await _subscribed(web.runtime) == 0
        # The platform sends it again: now it is stored and applied.
        again = await web.post(start_from("4917200000001"))
        assert again.status_code == 200, again.text
        await web.ingestion.drain()
        assert await _subscribed(web.runtime) == 1


async def test_a_forged_webhook_stores_nothing(settings: Settings) -> None:
    async with node(settings) as web:
        forged = await web.post(start_from("4917300000001"), secret="not-the-app-secret")
        assert forged.status_code == 401
        unsigned = await web.client.post(
            f"/webhooks/whatsapp/{web.channel_id}", content=start_from("4917300000001")
        )
        assert unsigned.status_code == 401
        malformed = await web.post(b'{"object": "whatsapp_business_account"')
        assert malformed.status_code == 400
        assert web.ingestion.committer.stored == 0
        assert await _count(web.runtime, webhook_inbox) == 0
        await web.ingestion.drain()
        assert await _subscribed(web.runtime) == 0


async def test_rows_a_crash_left_are_applied_when_a_process_starts(settings: Settings) -> None:
    # Stored durably (what the committer does before the 200), then the process died
    # before applying them: a fresh process applies them on start, with no request.
    runtime = await Runtime.create(settings, run_worker=False)
    try:
        channel_id = await _whatsapp_channel(runtime)
        bodies = [start_from(f"49175{n:06d}") for n in range(20)] + [status_of(1)]
        await inbox.store(runtime.db, [(channel_id, body) for body in bodies])
    finally:
        await runtime.close()
    async with node(settings, channel_id) as fresh:

        async def applied() -> bool:
            return await _count(fresh.runtime, webhook_inbox) == 0

        await _until(applied, "the crash's webhooks applied on start")
        assert await _subscribed(fresh.runtime) == 20
        assert fresh.ingestion.applier.totals.webhooks == 21
        assert fresh.ingestion.committer.stored == 0  # no request stored anything


async def test_shutdown_stores_and_applies_what_is_waiting(settings: Settings) -> None:
    async with node(settings) as web:
        web.ingestion.committer.max_delay = 5.0  # a batch that would wait a long time
        posts = [asyncio.create_task(web.post(start_from(f"49177{n:06d}"))) for n in range(10)]
        await _until(lambda: _waiting(web), "the webhooks waiting in the committer")
        await web.ingestion.close()  # as the lifespan does on the way out
        assert [(await p).status_code for p in posts] == [200] * 10
        assert web.ingestion.committer.commits == 1
        assert await _subscribed(web.runtime) == 10
        assert await _count(web.runtime, webhook_inbox) == 0
        late = await web.post(start_from("4917800000001"))
        assert late.status_code == 503


async def _waiting(web: Node) -> bool:
    return len(web.ingestion.committer._waiting) == 10


async def test_two_appliers_on_postgresql_never_apply_a_row_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, demo=False)
    a = await Runtime.create(settings, run_worker=False)
    b = await Runtime.create(settings, run_worker=False)
    try:
        channel_id = await _whatsapp_channel(a)
        bodies = [status_of(n) for n in range(400)]
        bodies += [start_from(f"49176{n:06d}") for n in range(100)]
        await inbox.store(a.db, [(channel_id, body) for body in bodies])
        # Two web nodes (own engines, own connections) sharing the backlog at once.
        first, second = InboxApplier(a, batch=16), InboxApplier(b, batch=16)
        await asyncio.gather(first.apply_all(), second.apply_all())
        total = first.totals.webhooks + second.totals.webhooks
        assert total == 500
        assert first.totals.webhooks > 0 and second.totals.webhooks > 0
        assert first.totals.messages + second.totals.messages == 100
        assert first.totals.duplicates + second.totals.duplicates == 0
        assert await _subscribed(a) == 100
        assert await _count(a, webhook_inbox) == 0
    finally:
        await a.close()
        await b.close()
