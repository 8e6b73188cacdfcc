"""How exactly worker processes sharing one sender's limit hold it (Redis and PostgreSQL).

The scaled mode's promise: however many ``rundfunk worker`` processes send for one
WhatsApp number, together they stay within its limit. The scenario: a limit of
1,000 sends/s for 30 s (``--quick``: 5 s), shared by 2 worker processes, each asking
the limiter from 64 concurrent tasks as the dispatcher's send tasks do (a task asks
again as soon as it got its slot: the harshest case for round trips). Every process
records the wall-clock time of every slot it was granted; this process merges them.

Figures (Redis as the main ones, then PostgreSQL with ``pg_`` in the name):

- ``ratelimit_error_pct``: the mean achieved rate against 1,000/s, signed, in percent
  (negative: below the limit). Target: within ±2 %.
- ``ratelimit_max_slice_pct``: the busiest 100 ms slice of the run as a percentage of
  its share (100 sends). Target: at most 110 %.
- ``ratelimit_min_slice_pct``, ``ratelimit_rate_per_s``: the quietest slice, the mean;
  ``ratelimit_forfeited_slots``: slots given up because a worker woke up more than
  5 ms after them (a stalled process: see ``StoreLimiter.acquire``);
  ``ratelimit_unused_slots``: slots reserved ahead that no task claimed in time.

    .venv/bin/python benchmarks/ratelimit.py [--quick] [--processes 2]

Redis: ``RUNDFUNK_BENCH_REDIS`` (default database 14 on 127.0.0.1; only this run's key
is touched, and deleted). PostgreSQL: a database created on the server of
``RUNDFUNK_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
migrated, and dropped afterwards. The workers are this file run with ``--worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import redis

from rundfunk.core.ratelimit import Rate
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.worker.postgres_limiter import PostgresLimiter
from rundfunk.worker.redis_limiter import RedisLimiter
from rundfunk.worker.shared_limiter import StoreLimiter

REDIS_URL = os.environ.get("RUNDFUNK_BENCH_REDIS", "redis://127.0.0.1:6379/14")
PG_ADMIN_URL = os.environ.get(
    "RUNDFUNK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
LIMIT = 1000.0  # sends per second, shared
TASKS = 64  # concurrent acquirers per process
SLICE = 0.1  # seconds
KEY = 1  # the one sender
LEAD_SECONDS = 0.3  # from "all workers are connected" to the common start


def _worker_main(args: argparse.Namespace) -> None:
    """One worker process: acquire from ``TASKS`` tasks until the end, record each grant."""

    async def run() -> dict[str, object]:
        limiter: StoreLimiter
        if args.store == "redis":
            limiter = RedisLimiter(args.url, prefix=args.prefix)
        else:
            limiter = PostgresLimiter(args.url, prefix=args.prefix)
        await limiter.start()
        print("ready", flush=True)  # then the common start time arrives on stdin
        start = float(await asyncio.to_thread(sys.stdin.readline))
        rate = Rate(args.rate)
        stamps: list[float] = []
        end = start + args.seconds

        async def sender() -> None:
            while True:
                await limiter.acquire(KEY, rate)
                now = time.time()
                if now >= end:
                    return
                stamps.append(now)

        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(sender() for _ in range(args.tasks)))
        await limiter.close()
        return {"stamps": stamps, "forfeited": limiter.forfeited, "unused": limiter.unused}

    Path(args.out).write_text(json.dumps(asyncio.run(run())))


def _run_workers(
    store: str, url: str, prefix: str, seconds: float, processes: int
) -> tuple[list[float], int, int]:
    """Start the workers on one store: every granted slot's time after the start, and
    how many slots the workers gave up because they woke up too late for them, and how
    many reserved ahead went unclaimed."""
    with tempfile.TemporaryDirectory(prefix="rundfunk-ratelimit-") as tmp:
        outs = [Path(tmp) / f"worker-{n}.json" for n in range(processes)]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    f"--store={store}",
                    f"--url={url}",
                    f"--prefix={prefix}",
                    f"--seconds={seconds}",
                    f"--tasks={TASKS}",
                    f"--rate={LIMIT}",
                    f"--out={out}",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for out in outs
        ]
        for worker in workers:  # each has imported everything and connected
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {store} worker failed to start")
        start = time.time() + LEAD_SECONDS
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start!r}\n")
            worker.stdin.close()
        for worker in workers:
            if worker.wait(timeout=seconds + LEAD_SECONDS + 60) != 0:
                raise RuntimeError(f"a {store} worker failed (exit {worker.returncode})")
        results = [json.loads(out.read_text()) for out in outs]
    stamps = [t - start for result in results for t in result["stamps"]]
    forfeited = sum(int(result["forfeited"]) for result in results)
    unused = sum(int(result["unused"]) for result in results)
    late = min(stamps, default=0.0)
    if late > 0.5:
        raise RuntimeError(f"the first {store} send came {late:.2f}s after the start")
    return sorted(stamps), forfeited, unused


def figures(run: tuple[list[float], int, int], seconds: float, name: str) -> dict[str, float]:
    """Mean rate and the busiest / quietest 100 ms slice, against ``LIMIT``."""
    stamps, forfeited, unused = run
    slices = [0] * round(seconds / SLICE)
    for t in stamps:
        index = int(t / SLICE)
        if 0 <= index < len(slices):
            slices[index] += 1
    share = LIMIT * SLICE
    rate = sum(slices) / seconds
    return {
        f"{name}_error_pct": round((rate / LIMIT - 1) * 100, 3),
        f"{name}_max_slice_pct": round(max(slices) / share * 100, 1),
        f"{name}_min_slice_pct": round(min(slices) / share * 100, 1),
        f"{name}_rate_per_s": round(rate, 1),
        f"{name}_forfeited_slots": float(forfeited),
        f"{name}_unused_slots": float(unused),
    }


def _redis_run(seconds: float, processes: int) -> tuple[list[float], int, int]:
    prefix = f"rundfunk-bench:{os.getpid()}:{time.time_ns()}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
        return _run_workers("redis", REDIS_URL, prefix, seconds, processes)
    finally:
        client.delete(f"{prefix}{KEY}")
        client.close()


def _postgres_run(seconds: float, processes: int) -> tuple[list[float], int, int]:
    name = f"rundfunk_bench_ratelimit_{os.getpid()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def migrate() -> None:
        db = Database(f"{base}/{name}")
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate())
        return _run_workers("postgresql", f"{base}/{name}", "sender:", seconds, processes)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(quick: bool, processes: int = 2) -> dict[str, float]:
    """Run the scenario on Redis, then on PostgreSQL; the figures of both."""
    seconds = 5.0 if quick else 30.0
    result = figures(_redis_run(seconds, processes), seconds, "ratelimit")
    result |= figures(_postgres_run(seconds, processes), seconds, "ratelimit_pg")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per store instead of 30 s")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for option in ("store", "url", "prefix", "out"):
        parser.add_argument(f"--{option}", help=argparse.SUPPRESS)
    for option in ("seconds", "rate"):
        parser.add_argument(f"--{option}", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=TASKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker_main(args)
        return
    seconds = 5 if args.quick else 30
    print(
        f"limit {LIMIT:.0f}/s for {seconds} s, {args.processes} worker processes × {TASKS} "
        f"tasks; targets: mean within ±2 %, no 100 ms slice above 110 %"
    )
    for key, value in measure(args.quick, args.processes).items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
