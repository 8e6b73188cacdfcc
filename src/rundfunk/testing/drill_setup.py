"""The crash drill's setup: its child processes, the fake platform's channel, bulk
subscribers, and what the fake accepted (see ``drill`` for the drill itself)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs
import httpx

TEMPLATE = "drill_news"
START_TIMEOUT_S = 60.0


class DrillUnavailable(RuntimeError):
    """PostgreSQL cannot be reached: the drill cannot run here."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, number: int = 0) -> None:
        self.log = log
        self.number = number  # a worker's incarnation
        self._out = log.open("ab")
        self.popen = subprocess.Popen(
            args,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")

    async def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while text not in (out := self.output()):
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited ({self.popen.returncode}):\n{out}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.log.name}: no {text!r} in {timeout}s:\n{out[-3000:]}")
            await asyncio.sleep(0.05)
        return out

    def kill(self) -> None:
        """SIGKILL to the process group: a crash (and the end of the drill)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._out.close()


async def admin(admin_url: str, statement: str) -> None:
    try:
        conn = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DrillUnavailable(f"PostgreSQL at {admin_url} is unreachable ({exc})") from exc
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Accepted:
    """What the fake accepted so far, read incrementally (``/_fake/sent?offset=``)."""

    def __init__(self, fake: httpx.AsyncClient) -> None:
        self.fake = fake
        self.count = 0  # every accepted message
        self.copies: Counter[str] = Counter()  # template messages per recipient

    async def update(self) -> Counter[str]:
        rows = (await self.fake.get("/_fake/sent", params={"offset": self.count})).json()
        self.count += len(rows)
        self.copies.update(m["to"] for m in rows if m["type"] == "template")
        return self.copies


async def whatsapp_channel(api: httpx.AsyncClient, fake: httpx.AsyncClient) -> int:
    """A WhatsApp channel on the fake (1,000/s), its template synced, webhooks on.

    The processes find the fake through the operator's RUNDFUNK_WHATSAPP_API_BASE_URL.
    """
    config: dict[str, Any] = {"phone_number_id": "1001", "waba_id": "2002", "throughput": 1000}
    config.update(access_token="drill-token", app_secret="drill-secret")
    body = {"kind": "whatsapp", "name": "Drill", "config": config}
    channel = (await api.post("/api/v1/channels", json=body)).raise_for_status().json()
    knobs = {"webhook_url": channel["webhook_url"], "read_share": 0.0}
    (await fake.post("/_fake/config", json=knobs)).raise_for_status()
    template = {"name": TEMPLATE, "language": "de", "body": "Hallo {{1}}, heute: {{2}}"}
    (await fake.post("/_fake/templates", json=template)).raise_for_status()
    synced = await api.post(f"/api/v1/channels/{channel['id']}/templates/sync")
    synced.raise_for_status()
    return int(channel["id"])


async def seed_subscribers(db: asyncpg.Connection, channel_id: int, count: int) -> None:
    """Opted-in subscribers in bulk: each contact row and its consent event, as an API
    opt-in by the workspace's token writes them (``subscriptions.opt_in``)."""
    workspace_id, token_id = await db.fetchrow(
        "SELECT c.workspace_id, t.id FROM channels c JOIN api_tokens t "
        "ON t.workspace_id = c.workspace_id WHERE c.id = $1 ORDER BY t.id LIMIT 1",
        channel_id,
    )
    now = datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC
    async with db.transaction():
        await db.execute(_CONTACTS, workspace_id, channel_id, now, count)
        await db.execute(_OPT_INS, workspace_id, f"token:{token_id}", now, channel_id)


_CONTACTS = """
INSERT INTO contacts (workspace_id, channel_id, address, name, attributes, tags, status,
                      blocked, created_at, updated_at)
SELECT $1, $2, a, 'Person ' || a, '{}', '[]', 'subscribed', false, $3, $3
FROM (SELECT '4917' || lpad(i::text, 8, '0') AS a FROM generate_series(0, $4 - 1) AS i) AS s
"""
_OPT_INS = """
INSERT INTO consent_events (workspace_id, contact_id, kind, source, actor, created_at)
SELECT $1, id, 'opt_in', 'api', $2, $3 FROM contacts WHERE channel_id = $4
"""


async def healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_done(api: httpx.AsyncClient, broadcast_id: int, deadline: float) -> None:
    while True:
        body = (await api.get(f"/api/v1/broadcasts/{broadcast_id}")).json()
        if body["status"] == "done":
            return
        if body["status"] in {"paused", "cancelled"} or time.monotonic() > deadline:
            raise RuntimeError(f"broadcast {broadcast_id} did not finish: {json.dumps(body)}")
        await asyncio.sleep(0.2)
