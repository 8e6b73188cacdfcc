"""The scaled mode end to end: ``rundfunk serve --no-worker`` and two ``rundfunk worker``
processes on one fresh PostgreSQL database, with the sandbox channel.

A 2,000-recipient broadcast is shared by both workers; one of them gets SIGTERM in the
middle of it, leaves with exit code 0 within seconds (its unsent claims go back to the
queue at once), the other finishes, and every phone has exactly one copy.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import LOG_DIR, RUNDFUNK, WebOnly, _free_port
from e2e_support import (
    Phones,
    addresses,
    async_wait_until,
    copies,
    create_channel,
    get_broadcast,
    tag,
    wait_broadcast_done,
)

pytestmark = pytest.mark.e2e

SUBSCRIBERS = 2000
THROUGHPUT = 300.0  # one limit shared by both workers (Redis or PostgreSQL): ~7 s for 2,000
STOP_AFTER = 500  # progressed sends before the SIGTERM
STOPPED = re.compile(r"worker stopped: (\d+) sent, (\d+) released")


class Worker:
    """One ``rundfunk worker`` process and its output."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [str(RUNDFUNK), "worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            with self._lock:
                self._lines.append(raw.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_running(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while "Rundfunk worker is running on PostgreSQL" not in self.output:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output}"
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.output}"
            time.sleep(0.05)

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns the exit code and how long the process took to leave."""
        asked = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        took = time.monotonic() - asked
        self._reader.join(timeout=5)
        return code, took

    def stopped(self) -> tuple[int, int]:
        found = STOPPED.search(self.output)
        assert found, f"{self.name} did not report its stop:\n{self.output[-3000:]}"
        return int(found.group(1)), int(found.group(2))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def scaled(postgres_url: str) -> Iterator[tuple[WebOnly, list[Worker]]]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-scaled-") as tmp:
        shared = {
            "RUNDFUNK_DATABASE_URL": postgres_url,
            "RUNDFUNK_SECRET_KEY": "e2e-scaled-secret",  # one key for every node
        }
        web = WebOnly(Path(tmp) / "web", _free_port(), shared)
        workers: list[Worker] = []
        try:
            web.start()
            for name in ("worker-a", "worker-b"):
                workers.append(Worker(name, {**web.env, "RUNDFUNK_DATA_DIR": f"{tmp}/{name}"}))
            for worker in workers:
                worker.wait_running()
            yield web, workers
        finally:
            for worker in workers:
                worker.kill()
            web.stop()
            LOG_DIR.mkdir(exist_ok=True)
            stamp = f"{os.getpid()}-{web.port}"
            (LOG_DIR / f"scaled-web-{stamp}.log").write_text(web.output)
            for worker in workers:
                (LOG_DIR / f"scaled-{worker.name}-{stamp}.log").write_text(worker.output)


def _progressed(stats: dict[str, int]) -> int:
    return stats["sent"] + stats["delivered"] + stats["read"]


async def test_two_workers_share_a_broadcast_and_survive_a_sigterm(
    scaled: tuple[WebOnly, list[Worker]],
) -> None:
    web, (first, second) = scaled
    people = addresses("21", SUBSCRIBERS)
    async with web.async_client() as client:
        channel_id = await create_channel(client, "e2e scaled", settings={"throughput": THROUGHPUT})
        phones = Phones(client, channel_id)
        started = time.monotonic()
        results = await phones.write_many([(a, "START") for a in people], limit=50)
        subscribe_s = time.monotonic() - started
        assert {r["action"] for r in results} == {"opt_in"}

        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts",
            json={"channel_id": channel_id, "text": f"Für {{{{ contact.address }}}} #{marker}"},
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        sent_at = time.monotonic()
        response = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
        assert response.status_code == 200, response.text
        assert response.json()["stats"]["total"] == SUBSCRIBERS

        async def far_enough() -> int:
            return _progressed((await get_broadcast(client, broadcast_id))["stats"]) >= STOP_AFTER

        await async_wait_until(far_enough, timeout=60, interval=0.02, message="first sends")
        first_progress_s = time.monotonic() - sent_at
        at_stop = _progressed((await get_broadcast(client, broadcast_id))["stats"])
        code, took = first.terminate()
        assert code == 0, first.output[-3000:]
        assert took < 5.0, f"the worker took {took:.1f}s to leave"
        first_sent, first_released = first.stopped()
        assert at_stop < SUBSCRIBERS, "the broadcast finished before the SIGTERM landed"

        final = await wait_broadcast_done(client, broadcast_id, timeout=90)
        total_s = time.monotonic() - sent_at
        stats = final["stats"]
        assert stats["total"] == SUBSCRIBERS and _progressed(stats) == SUBSCRIBERS, stats
        assert stats["failed"] == 0 and stats["skipped"] == 0, stats

        boxes = await phones.inboxes(people, limit=16)
        wrong = {
            a: [m["text"] for m in copies(box, marker)]
            for a, box in boxes.items()
            if [m["text"] for m in copies(box, marker)] != [f"Für {a} #{marker}"]
        }
        assert not wrong, f"{len(wrong)} phones without exactly one copy: {list(wrong.items())[:5]}"
        twice = {a: len(box) - 1 for a, box in boxes.items() if len(box) > 2}
        assert not twice, f"repeated confirmations: {list(twice.items())[:5]}"

    assert second.process.poll() is None, second.output[-3000:]
    code, second_took = second.terminate()
    assert code == 0, second.output[-3000:]
    second_sent, _ = second.stopped()
    # Both shared the welcome confirmations and the broadcast.
    assert first_sent > 0 and second_sent > 0, (first_sent, second_sent)
    assert first_sent + second_sent == 2 * SUBSCRIBERS, (first_sent, second_sent)
    print(
        f"\n[e2e workers] subscribed {SUBSCRIBERS} in {subscribe_s:.1f}s; "
        f"{STOP_AFTER} progressed {first_progress_s:.1f}s after send; SIGTERM at {at_stop}: "
        f"worker-a left in {took:.2f}s (exit 0) having sent {first_sent}, "
        f"released {first_released}; worker-b sent {second_sent}; broadcast done "
        f"{total_s:.1f}s after send; worker-b left in {second_took:.2f}s"
    )
