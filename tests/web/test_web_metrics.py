"""Operations endpoints: /metrics counting real work, who may read it, /readyz.

Counters live in the process-wide registry, so each test compares a scrape with the
value before its own work (other tests in this process count too).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.db.tables import deliveries, messages
from rundfunk.metrics import QueueDepth, start_metrics_server
from rundfunk.web import ops
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime
from service_world import running, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)


@asynccontextmanager
async def http(
    settings: Settings, runtime: Runtime, peer: tuple[str, int] = LOOPBACK
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app on ``runtime`` whose requests come from ``peer``."""
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=peer)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def now(name: str, **labels: str) -> float:
    """The registry's value right now (no scrape: keeps the queue-depth cache cold)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def _in_flight(runtime: Runtime) -> int:
    async with runtime.db.read() as conn:
        total = 0
        for table in (deliveries, messages):
            total += int(
                await conn.scalar(
                    select(func.count()).where(table.c.status.in_(("queued", "sending")))
                )
                or 0
            )
    return total


# --- counting real work ---------------------------------------------------------------


async def test_a_sandbox_broadcast_is_counted(
    settings: Settings, runtime: Runtime, client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    broken = await client.post(
        "/api/v1/channels",
        json={
            "kind": "sandbox",
            "name": "broken",
            "settings": {"sandbox": {"fail_permanent_share": 1.0}},
        },
        headers=tenant.auth(),
    )
    assert broken.status_code == 201, broken.text
    broken_id = broken.json()["id"]
    names = [
        ("rundfunk_sends_total", {"channel_kind": "sandbox", "outcome": "sent"}),
        ("rundfunk_sends_total", {"channel_kind": "sandbox", "outcome": "failed"}),
        ("rundfunk_send_errors_total", {"channel_kind": "sandbox", "code": "sandbox_permanent"}),
        ("rundfunk_inbound_messages_total", {"channel_kind": "sandbox", "action": "opt_in"}),
        ("rundfunk_inbound_messages_total", {"channel_kind": "sandbox", "action": "help"}),
        ("rundfunk_limiter_wait_seconds_count", {}),
    ]
    before = [now(name, **labels) for name, labels in names]

    for address in ("4901", "4902", "4903"):
        await phone(tenant.channel_id, address, "START")
    await phone(broken_id, "4909", "START")
    for channel_id in (tenant.channel_id, broken_id):
        draft = await client.post(
            "/api/v1/broadcasts",
            json={"channel_id": channel_id, "text": "News!"},
            headers=tenant.auth(),
        )
        started = await client.post(
            f"/api/v1/broadcasts/{draft.json()['id']}/send", headers=tenant.auth()
        )
        assert started.status_code == 200, started.text

    async with http(settings, runtime) as metrics:
        queued = await scrape(metrics)  # counted in the database at scrape time
        for queue in ("deliveries", "messages"):  # 4 news, 4 welcome confirmations
            assert value(queued, "rundfunk_queue_depth", queue=queue, status="queued") == 4
            assert value(queued, "rundfunk_queue_depth", queue=queue, status="sending") == 0

        async with running(runtime.dispatcher):
            await wait_until(lambda: _is_zero(_in_flight(runtime)), what="everything sent")
        after = await scrape(metrics)

    deltas = [
        value(after, name, **labels) - was
        for (name, labels), was in zip(names, before, strict=True)
    ]
    # 3 news + 3 welcomes sent; on the broken channel 1 news + 1 welcome failed
    assert deltas == [6, 2, 2, 4, 0, 8]
    # Cached for a few seconds: one busy scraper costs one count per 5 s, not per scrape.
    assert value(after, "rundfunk_queue_depth", queue="deliveries", status="queued") == 4


async def _is_zero(count: Any) -> bool:
    return await count == 0


async def test_queue_depth_is_recounted_once_the_cache_is_old(
    runtime: Runtime, tenant: Any, phone: Any
) -> None:
    depth = QueueDepth(runtime.db, ttl=0.0)
    await depth.refresh()
    assert now("rundfunk_queue_depth", queue="messages", status="queued") == 0
    await phone(tenant.channel_id, "4901", "START")  # queues the welcome confirmation
    await depth.refresh()
    assert now("rundfunk_queue_depth", queue="messages", status="queued") == 1


async def test_queue_depth_disappears_when_the_database_does_not_answer() -> None:
    dead = Database(_unreachable_postgres())
    try:
        depth = QueueDepth(dead, timeout=5.0)
        await depth.refresh()
    finally:
        await dead.dispose()
    samples = [s for s in REGISTRY.collect() if s.name == "rundfunk_queue_depth"]
    assert samples and samples[0].samples == []  # no stale figures


async def test_webhook_latency_is_observed(
    settings: Settings, runtime: Runtime, tenant: Any
) -> None:
    before = now("rundfunk_webhook_duration_seconds_count", channel_kind="whatsapp")
    async with http(settings, runtime) as client:
        # A sandbox channel is no WhatsApp number: 404, and still a webhook answered.
        response = await client.post(f"/webhooks/whatsapp/{tenant.channel_id}", content=b"{}")
        assert response.status_code == 404
        samples = await scrape(client)
    count = value(samples, "rundfunk_webhook_duration_seconds_count", channel_kind="whatsapp")
    assert count == before + 1
    total = value(samples, "rundfunk_webhook_duration_seconds_sum", channel_kind="whatsapp")
    assert total > 0


# --- who may read them -----------------------------------------------------------------


async def test_without_a_token_only_this_machine_may_read(
    settings: Settings, runtime: Runtime, assert_error: Callable[..., str]
) -> None:
    async with http(settings, runtime) as local:
        assert "rundfunk_sends_total" in (await local.get("/metrics")).text
        forwarded = await local.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"})
        assert_error(forwarded, 403, "forbidden", "RUNDFUNK_METRICS_TOKEN")
        proxied = await local.get("/metrics", headers={"Forwarded": "for=198.51.100.1"})
        assert_error(proxied, 403, "forbidden")
    async with http(settings, runtime, peer=REMOTE) as remote:
        assert_error(await remote.get("/metrics"), 403, "forbidden", "RUNDFUNK_METRICS_TOKEN")
        assert (await remote.get("/healthz")).status_code == 200  # probes stay open


async def test_with_a_token_everyone_needs_it(
    settings: Settings, runtime: Runtime, assert_error: Callable[..., str]
) -> None:
    guarded = settings.model_copy(update={"metrics_token": "s3cret-scrape"})
    async with http(guarded, runtime) as local:
        missing = await local.get("/metrics")
        assert_error(missing, 401, "unauthorized", "Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await local.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert_error(wrong, 401, "unauthorized")
    async with http(guarded, runtime, peer=REMOTE) as remote:
        good = {"Authorization": "Bearer s3cret-scrape"}
        samples = await scrape(remote, **good)
        assert any(name == "process_resident_memory_bytes" for name, _ in samples)
    assert "s3cret" not in repr(guarded)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def metrics_server(settings: Settings) -> Iterator[str]:
    server = start_metrics_server(settings)
    assert server is not None
    try:
        yield f"http://127.0.0.1:{settings.metrics_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_worker_serves_its_metrics_on_its_own_port(settings: Settings) -> None:
    assert start_metrics_server(settings) is None  # no port, no server
    plain = settings.model_copy(update={"metrics_port": _free_port()})
    with metrics_server(plain) as url:
        response = await asyncio.to_thread(httpx.get, url)
        assert response.status_code == 200
        assert "rundfunk_limiter_wait_seconds_bucket" in response.text
        forwarded = await asyncio.to_thread(httpx.get, url, headers={"X-Forwarded-For": "x"})
        assert forwarded.status_code == 403
    guarded = settings.model_copy(update={"metrics_port": _free_port(), "metrics_token": "tok"})
    with metrics_server(guarded) as url:
        refused = await asyncio.to_thread(httpx.get, url)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        good = await asyncio.to_thread(httpx.get, url, headers={"Authorization": "Bearer tok"})
        assert good.status_code == 200 and "rundfunk_sends_total" in good.text


# --- readiness -------------------------------------------------------------------------


async def test_ready_when_the_database_answers_at_the_newest_schema(
    settings: Settings, runtime: Runtime
) -> None:
    async with http(settings, runtime, peer=REMOTE) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["revision"] == max(ops._revisions().heads)
    assert "note" not in body and "reason" not in body


async def test_not_ready_while_the_schema_is_behind(settings: Settings, runtime: Runtime) -> None:
    async with runtime.db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    async with http(settings, runtime) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready" and body["revision"] == "0002"
    assert "rundfunk migrate" in body["reason"]

    async with runtime.db.write() as conn:  # never migrated at all
        await conn.execute(text("DROP TABLE alembic_version"))
    async with http(settings, runtime) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503, response.text
    assert response.json()["reason"].startswith("database schema is at no revision")


async def test_a_newer_schema_keeps_an_old_process_ready(
    settings: Settings, runtime: Runtime
) -> None:
    async with runtime.db.write() as conn:  # as a newer release's migration leaves it
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    async with http(settings, runtime) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == "9999" and "upgrade this process" in body["note"]


def _unreachable_postgres() -> str:
    return f"postgresql://nobody@127.0.0.1:{_free_port()}/gone"  # nothing listens there


async def test_not_ready_when_the_database_is_unreachable(settings: Settings) -> None:
    broken = Runtime(settings, Database(_unreachable_postgres()))
    try:
        async with http(settings, broken) as client:
            response = await client.get("/readyz")
            assert (await client.get("/healthz")).status_code == 200  # alive, not ready
    finally:
        await broken.close()
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "reason": "database unreachable (ConnectionRefusedError)",
    }
    assert "127.0.0.1" not in response.text  # where the database lives is not public


async def test_not_ready_when_the_database_hangs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "READY_TIMEOUT_SECONDS", 0.3)

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    url = make_url(f"postgresql://nobody@127.0.0.1:{port}/slow")
    hanging = Runtime(settings, Database(url.render_as_string()))
    try:
        async with http(settings, hanging) as client:
            started = asyncio.get_running_loop().time()
            response = await client.get("/readyz")
            elapsed = asyncio.get_running_loop().time() - started
    finally:
        await hanging.close()
        silent.close()
    assert response.status_code == 503
    assert response.json()["reason"] == "database did not answer within 0.3 s"
    assert elapsed < 2
