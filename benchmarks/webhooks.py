"""Webhook ingestion: signed WhatsApp status webhooks per second into one ``rundfunk serve``.

WhatsApp sends about three status webhooks per sent message, so 1,000 messages/s is
~3,000 signed POSTs/s (target: ≥ 3,000/s with a p99 ≤ 100 ms). One real ``rundfunk
serve`` process (embedded: SQLite in a fresh data dir, demo on, the worker running)
gets a WhatsApp channel with a known app secret through the API; then client processes
fire signed ``statuses`` webhooks at it for a fixed time, each keeping its connections
busy (one POST in flight per connection). The reports name wamids no delivery has
(``wamid.bench-…``): every one is verified, parsed, group-committed to the inbox before
its 200, then looked up and dropped by the applier — the full path except the row
update a real delivery would also get.

The same clients then hit a bare FastAPI endpoint (reads the body, answers 200) served
by uvicorn in another process: ``webhook_vs_bare`` is our rate over that one.

The machine has two cores and the client takes its share of them: it runs as
``CLIENT_PROCESSES`` processes (aiohttp, 32 connections each, the signed bodies made
beforehand), measured over the same window after a short warm-up. After the run the
inbox is watched until the applier has caught up (``webhook_drain_s``).

    .venv/bin/python benchmarks/webhooks.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from rundfunk.channels.whatsapp.webhook import sign

VENV_BIN = Path(sys.executable).parent
APP_SECRET = "bench-webhook-app-secret"
PHONE_NUMBER_ID = "109876543210"
WABA_ID = "209876543210"
CLIENT_PROCESSES = 2
CONNECTIONS_PER_PROCESS = 32
BODIES_PER_PROCESS = 2000
WARMUP_S = 1.0
TOKEN_LINE = re.compile(r"API token:\s*(rf_\S+)")

_BARE_APP = """
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/hook")
async def hook(request: Request) -> dict[str, bool]:
    await request.body()
    return {"ok": True}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_webhook(n: int, state: str) -> bytes:
    """One status report as the Cloud API sends it (conversation and pricing included)."""
    status = {
        "id": f"wamid.bench-{n:012d}",
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": f"49170{n % 10_000_000:07d}",
        "conversation": {"id": f"conv-{n % 5000}", "origin": {"type": "marketing"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "marketing"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4915100000000", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [status],
    }
    entry = {"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


# --- the client: one process of many ------------------------------------------------------


def _client(args: tuple[str, int, float, float]) -> tuple[int, int, list[float]]:
    return asyncio.run(_fire(*args))


async def _fire(
    url: str, offset: int, start_at: float, stop_at: float
) -> tuple[int, int, list[float]]:
    """POST for the window; (answered 200 in the window, failures, latencies in s)."""
    states = ("sent", "delivered", "read")
    bodies = []
    for i in range(BODIES_PER_PROCESS):
        body = status_webhook(offset + i, states[i % 3])
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(APP_SECRET, body),
        }
        bodies.append((body, headers))
    ok, failed, latencies = 0, 0, []
    connector = aiohttp.TCPConnector(limit=CONNECTIONS_PER_PROCESS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def connection(k: int) -> None:
            nonlocal ok, failed
            i = k
            while True:
                sent = time.time()
                if sent >= stop_at:
                    return
                body, headers = bodies[i % len(bodies)]
                i += CONNECTIONS_PER_PROCESS
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
                done = time.time()
                if start_at <= sent and done <= stop_at:
                    if status == 200:
                        ok += 1
                        latencies.append(done - sent)
                    else:
                        failed += 1

        await asyncio.gather(*(connection(k) for k in range(CONNECTIONS_PER_PROCESS)))
    return ok, failed, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load(url: str, seconds: float, server_pid: int) -> dict[str, float]:
    """Fire from ``CLIENT_PROCESSES`` processes over one window after a warm-up; the
    server's CPU time is read at the window's edges."""
    start_at = time.time() + 1.5 + WARMUP_S  # 1.5 s for the processes to get going
    stop_at = start_at + seconds
    jobs = [(url, p * 10_000_000, start_at, stop_at) for p in range(CLIENT_PROCESSES)]
    with multiprocessing.get_context("fork").Pool(CLIENT_PROCESSES) as pool:
        pending = pool.map_async(_client, jobs)
        time.sleep(max(0.0, start_at - time.time()))
        cpu_start = _cpu_seconds(server_pid)
        time.sleep(max(0.0, stop_at - time.time()))
        cpu_used = _cpu_seconds(server_pid) - cpu_start
        results = pending.get()
    ok = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    return {
        "per_s": ok / seconds,
        "failed": float(sum(r[1] for r in results)),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cpu_ms": cpu_used * 1000 / ok if ok else float("nan"),
    }


# --- the servers ----------------------------------------------------------------------------


class Process:
    """A server process with its output in a file; stopped with SIGTERM, then killed."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.output())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"server did not print {pattern.pattern!r}:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDFUNK_")}
    env.update(RUNDFUNK_DATA_DIR=str(data_dir), RUNDFUNK_DEMO="true", PYTHONUNBUFFERED="1")
    return env


def _wait_ready(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


def _whatsapp_channel(base: str, token: str) -> int:
    config = {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "access_token": "EAAG-bench-webhooks",
        "app_secret": APP_SECRET,
    }
    created = httpx.post(
        f"{base}/api/v1/channels",
        json={"kind": "whatsapp", "name": "Bench", "config": config},
        headers={"Authorization": f"Bearer {token}"},
    )
    created.raise_for_status()
    return int(created.json()["id"])


def _inbox_left(db_file: Path) -> int:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM webhook_inbox").fetchone()[0])


def _drain_seconds(db_file: Path, timeout: float = 120.0) -> float:
    """How long after the load the applier needs to empty the inbox."""
    started = time.monotonic()
    while _inbox_left(db_file) > 0:
        if time.monotonic() - started > timeout:
            return float("inf")
        time.sleep(0.05)
    return time.monotonic() - started


def measure(quick: bool) -> dict[str, float]:
    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="rundfunk-bench-webhooks-") as tmp:
        root = Path(tmp)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        ours = Process(
            [str(VENV_BIN / "rundfunk"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            _env(root / "data"),
            root / "serve.log",
        )
        try:
            token = ours.wait_for(TOKEN_LINE).group(1)
            _wait_ready(base)
            channel_id = _whatsapp_channel(base, token)
            hook = f"{base}/webhooks/whatsapp/{channel_id}"
            ours_figures = load(hook, seconds, ours.proc.pid)
            drain_s = _drain_seconds(root / "data" / "rundfunk.db")
        finally:
            ours.stop()
        bare_port = _free_port()
        (root / "bare_app.py").write_text(_BARE_APP)
        bare = Process(
            [
                str(VENV_BIN / "uvicorn"),
                "bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(bare_port),
                "--app-dir",
                str(root),
            ],
            dict(os.environ),
            root / "bare.log",
        )
        try:
            _wait_ready_bare(f"http://127.0.0.1:{bare_port}")
            bare_figures = load(f"http://127.0.0.1:{bare_port}/hook", seconds, bare.proc.pid)
        finally:
            bare.stop()
    return {
        "webhook_events_per_s": round(ours_figures["per_s"], 1),
        "webhook_p50_ms": round(ours_figures["p50_ms"], 2),
        "webhook_p99_ms": round(ours_figures["p99_ms"], 2),
        "webhook_failed": ours_figures["failed"],
        "webhook_drain_s": round(drain_s, 2),
        "webhook_server_cpu_ms": round(ours_figures["cpu_ms"], 3),
        "webhook_bare_cpu_ms": round(bare_figures["cpu_ms"], 3),
        "webhook_bare_per_s": round(bare_figures["per_s"], 1),
        "webhook_bare_p99_ms": round(bare_figures["p99_ms"], 2),
        "webhook_vs_bare": round(ours_figures["per_s"] / bare_figures["per_s"], 3),
        "webhook_seconds": seconds,
    }


def _wait_ready_bare(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{base}/hook", content=b"{}", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per server instead of 10 s")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))
