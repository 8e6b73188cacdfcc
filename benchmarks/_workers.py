"""One broadcast sent by real ``rundfunk worker`` processes against the fake Graph API.

The shared core of the dispatch, memory and scale-out benchmarks. The fake server
runs as its own process; the workers are started exactly as an operator would start
them (``rundfunk worker`` with ``RUNDFUNK_*`` settings); this process only fans the
broadcast out and watches the database.

The clock starts when ``send_broadcast`` is called and stops at the last delivery
row's ``updated_at`` (written when its outcome was recorded), so the polling interval
does not blur the figure. A run counts only if the fake received exactly one message
per person and every delivery row ended ``sent``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    VENV_BIN,
    FakeServer,
    Setup,
    cpu_seconds,
    fake_server,
    fresh_database,
    new_broadcast,
    rss_mb,
    seed_contacts,
    whatsapp_workspace,
    worker_env,
)
from sqlalchemy import func, select

from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import deliveries
from rundfunk.db.types import utcnow
from rundfunk.services import broadcasts as broadcast_service

# BENCH_PROFILE_DIR=/tmp/prof: each worker runs under cProfile and leaves its profile there.
PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR", "")
PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)


@dataclass
class RunResult:
    engine: str
    recipients: int
    workers: int
    seconds: float
    msgs_per_s: float
    peak_rss_mb: list[float] = field(default_factory=list)
    # CPU time per message sent: of all workers together, and of the fake server.
    worker_cpu_us_per_msg: float = 0.0
    fake_cpu_us_per_msg: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


class WorkerPool:
    """``count`` worker processes on ``url``; their output goes to files in ``directory``."""

    def __init__(self, url: str, count: int, directory: Path, **env: str) -> None:
        self.url = url
        self.count = count
        self.directory = directory
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self) -> None:
        for index in range(self.count):
            log = open(self.directory / f"worker-{index}.log", "wb")  # noqa: SIM115
            command = [str(VENV_BIN / "rundfunk"), "worker"]
            if PROFILE_DIR:  # where the time goes: cProfile around the whole worker
                out = Path(PROFILE_DIR) / f"worker-{os.getpid()}-{self.count}-{index}.prof"
                command = [sys.executable, "-m", "cProfile", "-o", str(out), *command]
            process = subprocess.Popen(
                command,
                env=worker_env(self.url, str(self.directory), **self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            self.processes.append(process)
        for index, process in enumerate(self.processes):
            await self._wait_running(index, process)

    async def _wait_running(self, index: int, process: subprocess.Popen[bytes]) -> None:
        log = self.directory / f"worker-{index}.log"
        deadline = time.monotonic() + 60
        while b"worker is running" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {index} did not start:\n{log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def peak_rss(self) -> list[float]:
        return [round(rss_mb(p.pid)[0], 1) for p in self.processes]

    async def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

    def logs(self) -> str:
        return "\n".join(
            (self.directory / f"worker-{i}.log").read_text()[-1500:] for i in range(self.count)
        )


async def _wait_done(db: Database, broadcast_id: int, timeout: float, pool: WorkerPool) -> None:
    deadline = time.monotonic() + timeout
    # Counting a million pending rows is not free: look less often on big runs (the
    # end time comes from the rows themselves, not from this loop).
    interval = 0.25 if timeout < 2000 else 1.0
    while True:
        async with db.read() as conn:
            pending = await conn.scalar(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.broadcast_id == broadcast_id, deliveries.c.status.in_(PENDING))
            )
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending} deliveries still pending:\n{pool.logs()}")
        if any(p.poll() is not None for p in pool.processes):
            raise RuntimeError(f"a worker exited during the run:\n{pool.logs()}")
        await asyncio.sleep(interval)


async def _outcome(db: Database, broadcast_id: int) -> tuple[datetime, dict[str, int]]:
    async with db.read() as conn:
        last = await conn.scalar(
            select(func.max(deliveries.c.updated_at)).where(
                deliveries.c.broadcast_id == broadcast_id
            )
        )
        counted = await conn.execute(
            select(deliveries.c.status, func.count())
            .where(deliveries.c.broadcast_id == broadcast_id)
            .group_by(deliveries.c.status)
        )
        statuses = {str(status): int(n) for status, n in counted}
    assert isinstance(last, datetime)
    return last, statuses


async def send_with_workers(
    setup: Setup, fake: FakeServer, recipients: int, workers: int, directory: Path, **env: str
) -> RunResult:
    """Send one template broadcast to everyone with ``workers`` processes; check and time it."""
    before = int((await fake.stats())["sent"])
    fake_cpu = cpu_seconds(fake.process.pid)
    # The fake is the operator's Graph address for every worker.
    env = {"RUNDFUNK_WHATSAPP_API_BASE_URL": fake.url, **env}
    pool = WorkerPool(setup.url, workers, directory, **env)
    db = Database(setup.url)
    try:
        await pool.start()
        worker_cpu = pool.cpu()
        broadcast_id = await new_broadcast(db, setup)
        started = utcnow()
        await broadcast_service.send_broadcast(db, actor=setup.actor, broadcast_id=broadcast_id)
        await _wait_done(db, broadcast_id, timeout=60 + recipients / 100, pool=pool)
        peaks = pool.peak_rss()
        worker_cpu = pool.cpu() - worker_cpu
        fake_cpu = cpu_seconds(fake.process.pid) - fake_cpu
        last, statuses = await _outcome(db, broadcast_id)
    finally:
        await pool.stop()
        await db.dispose()
    stats = await fake.stats()
    received = int(stats["sent"]) - before
    if statuses != {DeliveryStatus.SENT.value: recipients} or received != recipients:
        raise AssertionError(f"statuses {statuses}, fake received {received} of {recipients}")
    if stats["recipients_with_duplicates"] and before == 0:
        raise AssertionError(f"{stats['recipients_with_duplicates']} people got two copies")
    seconds = (last - started).total_seconds()
    return RunResult(
        engine="sqlite" if db.is_sqlite else "postgres",
        recipients=recipients,
        workers=workers,
        seconds=round(seconds, 3),
        msgs_per_s=round(recipients / seconds, 1),
        peak_rss_mb=peaks,
        statuses=statuses,
        worker_cpu_us_per_msg=round(worker_cpu / recipients * 1e6, 1),
        fake_cpu_us_per_msg=round(fake_cpu / recipients * 1e6, 1),
    )


async def one_broadcast(
    engine: str, recipients: int, *, workers: int = 1, latency: float = 0.0, **env: str
) -> RunResult:
    """A fresh database and fake server, ``recipients`` contacts, one broadcast."""
    async with fresh_database(engine) as url, fake_server(latency) as fake:
        setup = await whatsapp_workspace(url, fake.url)
        await seed_contacts(setup, 0, recipients)
        with tempfile.TemporaryDirectory(prefix="rundfunk-workers-") as tmp:
            return await send_with_workers(setup, fake, recipients, workers, Path(tmp), **env)


def describe(result: RunResult) -> str:
    rss = ", ".join(f"{mb:.0f}" for mb in result.peak_rss_mb)
    return (
        f"{result.engine}, {result.workers} worker(s), {result.recipients:,} recipients: "
        f"{result.seconds:.2f} s, {result.msgs_per_s:,.0f} msg/s, peak RSS {rss} MB, "
        f"CPU per message: worker {result.worker_cpu_us_per_msg:,.0f} us, "
        f"fake server {result.fake_cpu_us_per_msg:,.0f} us"
    )


def as_dict(result: RunResult) -> dict[str, Any]:
    return {
        "engine": result.engine,
        "recipients": result.recipients,
        "workers": result.workers,
        "seconds": result.seconds,
        "msgs_per_s": result.msgs_per_s,
        "peak_rss_mb": result.peak_rss_mb,
    }
