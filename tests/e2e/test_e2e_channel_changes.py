"""Channel changes reach every process within 2 s (scaled mode, PostgreSQL + Redis).

Node A (``rundfunk serve --no-worker``) takes the API calls, worker B (``rundfunk
worker``) sends, node C (``serve --no-worker``) receives the platform's webhooks, all
on one database and one Redis, against the fake Graph server. Each process caches its
channel objects; the change is made through node A only.

1. Rate: 60 people write START (webhooks to node C); their welcomes leave worker B at
   the channel's 2/s. Raising it to 500/s through node A makes B send the rest within
   the bound, although its sends were waiting for slots reserved at 2/s (up to 25 s
   ahead).
2. Secrets: rotating the app secret, the verify token and the access token through
   node A makes node C accept webhooks signed with the new secret (and refuse the old)
   within the bound and answer the handshake with the new verify token only, and
   worker B sends with the new access token (the fake refuses the old one).

The version check every process also runs is set to 30 s here, so only the change
signals (Redis, NOTIFY) can meet the bound. Measured under load (2 cores shared): the
new rate reached worker B 0.06-0.13 s after node A answered; node C accepted the first
webhook signed with the new secret, posted right after the answer (0.05-0.13 s).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import LOG_DIR, RUNDFUNK, WebOnly, _free_port
from e2e_support import async_wait_until
from test_e2e_workers import Worker

from engines import ON_POSTGRES
from rundfunk.testing.fake_graph import FakeGraph

# PostgreSQL and Redis by design, whatever the engine under test: once per CI run.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not ON_POSTGRES, reason="runs in the suite's PostgreSQL pass"),
]

BOUND_S = 2.0
PEOPLE = 60
SLOW, FAST = 2, 500  # messages per second
OLD_SECRET, NEW_SECRET = "app-secret-before", "app-secret-after"
OLD_TOKEN, NEW_TOKEN = "EAAG-token-before", "EAAG-token-after"
OLD_VERIFY, NEW_VERIFY = "verify-token-before", "verify-token-after"


class NextNode(WebOnly):
    """Another ``serve --no-worker`` on a database that already has its workspace."""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(RUNDFUNK), "serve", "--no-worker", "--host", "127.0.0.1"]
            + ["--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        self._wait_healthy()  # the token is set already: no banner is expected
        self._new_client()


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(access_token=OLD_TOKEN, app_secret=OLD_SECRET, seed=5)
    await fake.start(port=_free_port())
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def nodes(
    postgres_url: str, redis_url: str, graph: FakeGraph
) -> Iterator[tuple[WebOnly, Worker, WebOnly]]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-changes-") as tmp:
        shared = {
            "RUNDFUNK_DATABASE_URL": postgres_url,
            "RUNDFUNK_REDIS_URL": redis_url,
            "RUNDFUNK_SECRET_KEY": "e2e-changes-secret",
            "RUNDFUNK_WHATSAPP_API_BASE_URL": str(graph.base_url),
            "RUNDFUNK_CHANNEL_CHECK_SECONDS": "30",  # only the signals can meet the bound
        }
        node_a = WebOnly(Path(tmp) / "a", _free_port(), shared)
        node_c = NextNode(Path(tmp) / "c", _free_port(), shared)
        worker: Worker | None = None
        try:
            node_a.start()  # first on the empty database: the demo workspace and its token
            worker = Worker("worker-b", {**node_a.env, "RUNDFUNK_DATA_DIR": f"{tmp}/b"})
            node_c.token = node_a.token
            node_c.start()
            worker.wait_running()
            yield node_a, worker, node_c
        finally:
            if worker is not None:
                worker.kill()
            node_c.stop()
            node_a.stop()
            LOG_DIR.mkdir(exist_ok=True)
            stamp = f"changes-{node_a.port}"
            (LOG_DIR / f"{stamp}-a.log").write_text(node_a.output)
            (LOG_DIR / f"{stamp}-c.log").write_text(node_c.output)
            if worker is not None:
                (LOG_DIR / f"{stamp}-b.log").write_text(worker.output)


def _fast_from(times: list[float], after: float) -> float | None:
    """When sending first ran at over 50/s after ``after``: the first send that has the
    next five within 0.1 s (at 2/s they would be 2.5 s apart)."""
    later = [t for t in times if t >= after]
    for i in range(len(later) - 5):
        if later[i + 5] - later[i] < 0.1:
            return later[i]
    return None


def _message(graph: FakeGraph, wa_id: str, text: str) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550001234",
            "phone_number_id": graph.phone_number_id,
        },
        "contacts": [{"profile": {"name": "Signer"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": f"wamid.e2e-{wa_id}-{time.monotonic_ns()}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": graph.waba_id, "changes": [{"field": "messages", "value": value}]}],
    }


async def test_rate_and_secrets_changed_on_node_a_reach_worker_b_and_node_c(
    nodes: tuple[WebOnly, Worker, WebOnly], graph: FakeGraph
) -> None:
    node_a, worker, node_c = nodes
    async with node_a.async_client() as api:
        config = {
            "phone_number_id": graph.phone_number_id,
            "waba_id": graph.waba_id,
            "access_token": OLD_TOKEN,
            "app_secret": OLD_SECRET,
            "verify_token": OLD_VERIFY,
            "throughput": SLOW,
            "burst": 1,
            "pair_interval_seconds": 0,
        }
        created = await api.post(
            "/api/v1/channels", json={"kind": "whatsapp", "name": "Changes", "config": config}
        )
        assert created.status_code == 201, created.text
        channel_id = int(created.json()["id"])
        graph.webhook_url = f"{node_c.base_url}/webhooks/whatsapp/{channel_id}"

        # -- 1. the rate: 10/s, raised to 500/s through node A ------------------------------
        people = [f"49171{i:07d}" for i in range(PEOPLE)]
        await asyncio.gather(*(graph.user_writes(p, "START") for p in people))
        async def all_subscribed() -> bool | None:  # every welcome is queued
            listed = await api.get(
                "/api/v1/contacts",
                params={"channel_id": channel_id, "status": "subscribed", "limit": 100},
            )
            return True if len(listed.json()["items"]) == PEOPLE else None

        await async_wait_until(all_subscribed, timeout=60, message="60 subscribed")
        await async_wait_until(
            _ready(lambda: len(graph.sent) >= 4), timeout=30, message="sending at 2/s"
        )
        slow = [m.at for m in graph.sent]
        pace = (len(slow) - 1) / (slow[-1] - slow[0])
        assert pace < SLOW * 1.5, f"{pace:.1f}/s before the change, configured {SLOW}/s"
        changed = await api.patch(
            f"/api/v1/channels/{channel_id}", json={"config": {"throughput": FAST}}
        )
        assert changed.status_code == 200, changed.text
        changed_at = time.time()
        await async_wait_until(
            _ready(lambda: len(graph.sent) >= PEOPLE), timeout=15, message="every welcome"
        )
        fast_at = _fast_from(sorted(m.at for m in graph.sent), changed_at)
        assert fast_at is not None, "worker B never sent faster than 2/s"
        rate_reached = max(0.0, fast_at - changed_at)
        assert rate_reached < BOUND_S, f"the new rate reached worker B after {rate_reached:.2f}s"
        remaining = [m.at for m in graph.sent if m.at >= changed_at]
        offsets = [round(t - changed_at, 3) for t in sorted(m.at for m in graph.sent)]
        assert len(remaining) > PEOPLE / 2, f"too few were left for the new rate: {offsets}"
        assert remaining[-1] - changed_at < BOUND_S + 0.5, f"the rest was slow: {offsets}"

        # -- 2. secrets: a new app secret and access token through node A --------------------
        rotated = await api.patch(
            f"/api/v1/channels/{channel_id}",
            json={
                "config": {
                    "app_secret": NEW_SECRET,
                    "access_token": NEW_TOKEN,
                    "verify_token": NEW_VERIFY,
                }
            },
        )
        assert rotated.status_code == 200, rotated.text
        rotated_at = time.monotonic()
        graph.access_token, graph.app_secret = NEW_TOKEN, NEW_SECRET  # Meta's side too
        tries = 0
        while True:
            tries += 1
            status = await graph.post_webhook(_message(graph, "491729999999", f"try {tries}"))
            if status == 200:
                break
            assert status == 401, f"node C answered {status}"
            assert time.monotonic() - rotated_at < BOUND_S * 2, "node C kept the old secret"
            await asyncio.sleep(0.02)
        secret_reached = time.monotonic() - rotated_at
        assert secret_reached < BOUND_S, f"node C took the new secret after {secret_reached:.2f}s"
        old = await graph.post_webhook(_message(graph, "491729999998", "old"), secret=OLD_SECRET)
        assert old == 401, "node C still accepts the old app secret"
        # Meta's verification handshake on node C takes the new verify token only.
        hook = f"/webhooks/whatsapp/{channel_id}"
        params = {"hub.mode": "subscribe", "hub.challenge": "4242"}
        async with httpx.AsyncClient(base_url=node_c.base_url, timeout=10) as meta:
            new = await meta.get(hook, params={**params, "hub.verify_token": NEW_VERIFY})
            assert (new.status_code, new.text) == (200, "4242")
            stale = await meta.get(hook, params={**params, "hub.verify_token": OLD_VERIFY})
            assert stale.status_code == 403
        # Worker B sends with the new access token: the fake refuses the old one.
        before = len(graph.sent)
        await graph.user_writes("491729999997", "START")
        await async_wait_until(
            _ready(lambda: len(graph.sent) > before), timeout=10, message="a new-token send"
        )
        status = (await api.get(f"/api/v1/channels/{channel_id}")).json()["status"]
        assert status == "active"
    print(
        f"\n[channel changes] rate 2/s -> 500/s reached worker B after {rate_reached:.3f}s "
        f"(the {len(remaining)} left all sent {remaining[-1] - changed_at:.3f}s after); "
        f"node C accepted the new app secret after {secret_reached:.3f}s ({tries} tries)"
    )
    assert worker.process.poll() is None


def _ready(check: Any) -> Any:
    async def probe() -> bool | None:
        return True if check() else None

    return probe
