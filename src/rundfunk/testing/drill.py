"""The crash drill: SIGKILL workers at random moments during a WhatsApp broadcast.

Shipped with the package (like ``fake_graph``) so the end-to-end test and the
benchmark run the same drill. On a fresh PostgreSQL database it starts the fake Graph
API (status webhooks on), ``rundfunk serve --no-worker`` and a fleet of ``rundfunk
worker`` processes, seeds N opted-in subscribers and sends one template broadcast;
while it is sending it SIGKILLs a random worker at random moments and starts a new
one after each kill. At the end it counts per recipient the copies the fake accepted.
When and whom to kill comes from one seed, printed, so a failing plan can be replayed.

Which rows a kill left behind: each worker incarnation gets a lease a millisecond
longer than the one before (``RUNDFUNK_LEASE_SECONDS``), and a claim stamps
``updated_at = now`` and ``lease_until = now + lease`` together, so the rows still
``sending`` whose ``lease_until - updated_at`` is the dead worker's lease are exactly
its unfinished claims (``orphaned``). Each is then either settled by its status
callback (never claimed again, one copy at the platform) or sent again after the
settle time (claimed again: its first claim never reached the platform).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs
import httpx

from rundfunk.testing.drill_setup import (
    START_TIMEOUT_S,
    TEMPLATE,
    Accepted,
    Process,
    admin,
    free_port,
    healthy,
    seed_subscribers,
    wait_done,
    whatsapp_channel,
)

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
RUNDFUNK = Path(sys.executable).parent / "rundfunk"


@dataclass
class Kill:
    at_s: float  # seconds after the broadcast was sent
    worker: int  # the fleet slot
    incarnation: int
    accepted_before: int  # messages the platform had accepted when the kill landed
    broadcast_status: str  # the broadcast's status right after the kill
    orphaned: int  # rows the dead worker left in "sending"


@dataclass
class DrillResult:
    seed: int
    recipients: int
    workers: int
    kills: int
    duplicates: int  # recipients with more than one copy at the platform
    missing: int  # recipients without a copy
    seconds: float  # the whole drill, start to last count
    seed_seconds: float  # creating the subscribers
    broadcast_seconds: float  # from "send" to the broadcast's "done"
    fanout_seconds: float  # the "send" request (it writes every delivery row)
    orphaned: int  # rows kills left in "sending" (see the module docstring)
    settled_by_callback: int  # of those: settled by the status webhook, not sent again
    resent: int  # of those: sent again after the settle time
    claimed_again: int  # every delivery claimed more than once (attempts > 1)
    lease_seconds: float
    settle_seconds: float
    kill_log: list[Kill] = field(default_factory=list)
    logs: str = ""

    @property
    def kills_while_sending(self) -> bool:
        return all(
            k.broadcast_status == "sending" and k.accepted_before < self.recipients
            for k in self.kill_log
        )

    def summary(self) -> str:
        return (
            f"crash drill (seed {self.seed}): {self.recipients} recipients, "
            f"{self.workers} workers, {self.kills} SIGKILLs while sending; "
            f"duplicates {self.duplicates}, missing {self.missing}; broadcast "
            f"{self.broadcast_seconds:.1f}s (fan-out {self.fanout_seconds:.1f}s), "
            f"drill {self.seconds:.1f}s (seeding "
            f"{self.seed_seconds:.1f}s); kills left {self.orphaned} rows in flight: "
            f"{self.settled_by_callback} settled by status callback, {self.resent} sent "
            f"again after the settle time; {self.claimed_again} deliveries claimed more "
            f"than once; lease {self.lease_seconds:g}s, settle {self.settle_seconds:g}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kills_while_sending": self.kills_while_sending}


async def run_drill(
    recipients: int,
    *,
    kills: int = 12,
    seed: int | None = None,
    workers: int = 3,
    lease_seconds: float = 5.0,
    settle_seconds: float = 5.0,
    database_url: str | None = None,
    admin_url: str = ADMIN_URL,
    timeout: float = 600.0,
) -> DrillResult:
    """Run the drill once; ``database_url``: an empty database to use instead of a new one."""
    seed = random.randrange(1, 2**31) if seed is None else seed
    print(f"[drill] seed {seed}: {recipients} recipients, {kills} kills, {workers} workers")
    name = f"rundfunk_drill_{os.getpid()}_{random.randrange(10**6)}"
    url = database_url
    if url is None:
        await admin(admin_url, f'CREATE DATABASE "{name}"')
        url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    logs = Path(tempfile.mkdtemp(prefix="rundfunk-drill-"))
    fleet = _Fleet(url, logs, seed, lease_seconds, settle_seconds)
    try:
        result = await fleet.run(recipients, kills, workers, timeout)
        result.logs = str(logs)
        return result
    finally:
        fleet.close()
        if database_url is None:
            await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drill(recipients: int, **kwargs: Any) -> DrillResult:
    """``run_drill`` from synchronous code."""
    return asyncio.run(run_drill(recipients, **kwargs))


class _Fleet:
    """The processes of one drill, the plan of kills, and the counting."""

    def __init__(
        self, url: str, logs: Path, seed: int, lease_seconds: float, settle_seconds: float
    ) -> None:
        self.url = url
        self.logs = logs
        self.rng = random.Random(seed)
        self.seed = seed
        self.lease_seconds = lease_seconds
        self.settle_seconds = settle_seconds
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDFUNK_")}
        self.env.update(
            RUNDFUNK_DATABASE_URL=url,
            RUNDFUNK_SECRET_KEY=f"drill-{seed}",  # one key for every node
            RUNDFUNK_DEMO="true",  # the banner's API token drives the drill
            # Chunks of 200 (not 500): a live worker holds at most two, and must send
            # them well within lease + settle, or its rows are taken over while it still
            # holds them: leases are not renewed, and nothing fences a stale claim.
            RUNDFUNK_CHUNK_SIZE="200",
            RUNDFUNK_SETTLE_SECONDS=str(settle_seconds),
            RUNDFUNK_LOG_FORMAT="text",
            RUNDFUNK_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        self.slots: list[Process] = []
        self.leases: list[float] = []  # per slot: the lease of its current incarnation
        self.incarnations = 0
        self.everyone: list[Process] = []
        self.db: asyncpg.Connection = None
        self.broadcast_id = 0
        self.sent_at = 0.0

    # -- processes ------------------------------------------------------------------------
    def _start_worker(self) -> tuple[Process, float]:
        self.incarnations += 1
        lease = round(self.lease_seconds + 0.001 * self.incarnations, 3)
        env = {
            **self.env,
            "RUNDFUNK_LEASE_SECONDS": str(lease),
            "RUNDFUNK_DATA_DIR": str(self.logs / f"worker-{self.incarnations}"),
        }
        log = self.logs / f"worker-{self.incarnations}.log"
        process = Process([str(RUNDFUNK), "worker"], env, log, self.incarnations)
        self.everyone.append(process)
        return process, lease

    async def _start(self, workers: int) -> tuple[str, str]:
        """The fake, the web node and the fleet; returns the web URL and the fake's URL."""
        graph_args = [sys.executable, "-m", "rundfunk.testing.fake_graph", "--seed", str(self.seed)]
        graph_args += ["--access-token", "drill-token", "--app-secret", "drill-secret"]
        graph_port = free_port()
        graph_args += ["--port", str(graph_port)]
        # Every node sends to the fake: the operator's setting, as in production.
        self.env["RUNDFUNK_WHATSAPP_API_BASE_URL"] = f"http://127.0.0.1:{graph_port}"
        graph = Process(graph_args, self.env, self.logs / "fake-graph.log")
        self.everyone.append(graph)
        port = free_port()
        web_env = {**self.env, "RUNDFUNK_DATA_DIR": str(self.logs / "web")}
        web_args = [str(RUNDFUNK), "serve", "--no-worker", "--host", "127.0.0.1"]
        web = Process([*web_args, "--port", str(port)], web_env, self.logs / "web.log")
        self.everyone.append(web)
        graph_out = await graph.wait_for("FAKE_GRAPH_URL=")
        graph_url = graph_out.split("FAKE_GRAPH_URL=", 1)[1].split()[0]
        banner = await web.wait_for("API token:")
        self.token = banner.split("API token:", 1)[1].split()[0]
        web_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await healthy(web_url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"web node not healthy:\n{web.output()[-3000:]}")
            await asyncio.sleep(0.1)
        for _ in range(workers):
            process, lease = self._start_worker()
            self.slots.append(process)
            self.leases.append(lease)
        for process in self.slots:
            await process.wait_for("worker is running")
        return web_url, graph_url

    def close(self) -> None:
        for process in reversed(self.everyone):
            process.kill()

    # -- the drill ------------------------------------------------------------------------
    async def run(self, recipients: int, kills: int, workers: int, timeout: float) -> DrillResult:
        started = time.monotonic()
        web_url, graph_url = await self._start(workers)
        auth = {"Authorization": f"Bearer {self.token}"}
        async with (
            httpx.AsyncClient(base_url=web_url, headers=auth, timeout=120) as api,
            httpx.AsyncClient(base_url=graph_url, timeout=120) as fake,
        ):
            channel_id = await whatsapp_channel(api, fake)
            self.db = db = await asyncpg.connect(self.url)
            try:
                seeding = time.monotonic()
                await seed_subscribers(db, channel_id, recipients)
                seed_s = time.monotonic() - seeding
                params = ["{{ contact.name }}", f"drill {self.seed}"]
                template = {"name": TEMPLATE, "language": "de", "body_parameters": params}
                body = {"channel_id": channel_id, "template": template}
                created = (await api.post("/api/v1/broadcasts", json=body)).raise_for_status()
                self.broadcast_id = int(created.json()["id"])
                self.sent_at = time.monotonic()
                (await api.post(f"/api/v1/broadcasts/{self.broadcast_id}/send")).raise_for_status()
                fanout_s = time.monotonic() - self.sent_at
                accepted = Accepted(fake)
                kill_log, orphans = await self._kill_while_sending(accepted, kills, timeout)
                await wait_done(api, self.broadcast_id, self.sent_at + timeout)
                broadcast_s = time.monotonic() - self.sent_at
                query = "SELECT id, attempts FROM deliveries WHERE broadcast_id = $1"
                attempts = dict(await db.fetch(query, self.broadcast_id))
                people = [r["address"] for r in await db.fetch("SELECT address FROM contacts")]
            finally:
                await db.close()
            copies = await accepted.update()
        resent = sum(1 for i, before in orphans.items() if attempts[i] > before)
        return DrillResult(
            seed=self.seed,
            recipients=recipients,
            workers=workers,
            kills=len(kill_log),
            duplicates=sum(1 for p in people if copies[p] > 1),
            missing=sum(1 for p in people if copies[p] == 0),
            seconds=time.monotonic() - started,
            seed_seconds=seed_s,
            broadcast_seconds=broadcast_s,
            fanout_seconds=fanout_s,
            orphaned=len(orphans),
            settled_by_callback=len(orphans) - resent,
            resent=resent,
            claimed_again=sum(1 for n in attempts.values() if n > 1),
            lease_seconds=self.lease_seconds,
            settle_seconds=self.settle_seconds,
            kill_log=kill_log,
        )

    async def _kill_while_sending(
        self, accepted: Accepted, kills: int, timeout: float
    ) -> tuple[list[Kill], dict[int, int]]:
        """Kill at accepted counts drawn up front (3-85 % of the recipients), at least
        ``MIN_GAP_S`` apart; returns the kills and the orphaned rows' attempts."""
        recipients = await self.db.fetchval("SELECT count(*) FROM contacts")
        marks = sorted(int(self.rng.uniform(0.03, 0.85) * recipients) for _ in range(kills))
        victims = [self.rng.randrange(len(self.slots)) for _ in range(kills)]
        status_query = "SELECT status FROM broadcasts WHERE id = $1"
        log: list[Kill] = []
        orphans: dict[int, int] = {}
        last = 0.0
        while len(log) < kills:
            if time.monotonic() > self.sent_at + timeout:
                raise RuntimeError(f"only {len(log)} kills in {timeout}s")
            await accepted.update()
            if accepted.count < marks[len(log)] or time.monotonic() - last < MIN_GAP_S:
                await asyncio.sleep(0.1)
                continue
            running = [i for i, p in enumerate(self.slots) if "worker is running" in p.output()]
            if not running:
                await asyncio.sleep(0.1)
                continue
            if await self.db.fetchval(status_query, self.broadcast_id) != "sending":
                break  # finished before the plan did: fewer kills (the caller judges)
            # The planned victim, or (still starting after an earlier kill) a working one.
            slot = victims[len(log)]
            slot = slot if slot in running else self.rng.choice(running)
            victim, lease = self.slots[slot], self.leases[slot]
            victim.kill()
            last = time.monotonic()
            # Twice: the dead worker's last claim may commit a moment after the kill.
            left: dict[int, int] = {}
            for pause in (0.0, 0.3):
                await asyncio.sleep(pause)
                rows = await self.db.fetch(ORPHANS, round(lease * 1000))
                left.update((row["id"], row["attempts"]) for row in rows if row["id"] not in left)
            orphans.update(left)
            status = str(await self.db.fetchval(status_query, self.broadcast_id))
            self.slots[slot], self.leases[slot] = self._start_worker()
            at_s = round(last - self.sent_at, 2)
            log.append(Kill(at_s, slot, victim.number, accepted.count, status, len(left)))
            print(f"[drill] kill {len(log)}: {log[-1]}", flush=True)
        return log, orphans


MIN_GAP_S = 1.0  # between kills
# A dead incarnation's claims: still "sending", stamped with its lease (milliseconds).
ORPHANS = (
    "SELECT id, attempts FROM deliveries WHERE status = 'sending' "
    "AND round(extract(epoch FROM lease_until - updated_at) * 1000) = $1"
)
