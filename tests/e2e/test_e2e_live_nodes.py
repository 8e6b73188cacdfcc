"""Live console updates across web nodes: a browser connected to node A sees at once a
message that node B stored, through Redis pub/sub.

Node B is ``rundfunk serve --no-worker``, node A ``rundfunk serve``; both share one
PostgreSQL database and one Redis. An agent's inbox stream is open on A; simulated
phones write to B. With Redis every node's signal reaches the stream, so it checks
the database only every 5 s on its own — a change seen well within a second can only
have come through the pub/sub signal.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_server import Server, WebOnly, _free_port
from e2e_support import addresses

pytestmark = pytest.mark.e2e

ROUNDS = 5
SIGNAL_BOUND_S = 2.5  # the stream's own fallback check comes only after 5 s


@pytest.fixture
def two_nodes(postgres_url: str, redis_url: str) -> Iterator[tuple[Server, WebOnly]]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-nodes-") as tmp:
        shared = {
            "RUNDFUNK_DATABASE_URL": postgres_url,
            "RUNDFUNK_REDIS_URL": redis_url,
            "RUNDFUNK_SECRET_KEY": "e2e-nodes-secret",
        }
        node_b = WebOnly(Path(tmp) / "b", _free_port(), shared)
        node_a = Server(Path(tmp) / "a", _free_port(), shared)
        try:
            node_b.start()  # first on the empty database: creates the demo workspace
            node_a.token, node_a.channel_id = node_b.token, node_b.channel_id
            node_a.start()
            yield node_a, node_b
        finally:
            node_a.stop()
            node_b.stop()


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    client.cookies.set("rf_form", "e2e-form-token")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": "e2e-form-token"},
    )
    assert response.status_code == 303, response.text


async def _events(response: httpx.Response) -> AsyncIterator[float]:
    """When each ``change`` event of an open stream arrived (monotonic seconds)."""
    async for line in response.aiter_lines():
        if line == "event: change":
            yield time.monotonic()


async def test_a_message_stored_by_node_b_shows_at_once_on_node_a(
    two_nodes: tuple[Server, WebOnly],
) -> None:
    node_a, node_b = two_nodes
    phones = addresses("31", ROUNDS)
    async with (
        httpx.AsyncClient(base_url=node_a.base_url, timeout=30) as console,
        httpx.AsyncClient(base_url=node_b.base_url, timeout=30) as phone_side,
    ):
        await _sign_in(console, node_b.email, node_b.password)
        async with console.stream("GET", "/inbox/live") as stream:
            assert stream.status_code == 200
            assert re.match(r"text/event-stream", stream.headers["content-type"])
            changes = _events(stream)
            await anext(changes)  # the first fingerprint, sent at once
            delays: list[float] = []
            for address in phones:
                written = time.monotonic()
                response = await phone_side.post(
                    f"/sandbox/{node_b.channel_id}/phones/{address}/messages",
                    json={"text": "Hallo, ist da jemand?"},
                )
                assert response.status_code == 202, response.text
                seen = await asyncio.wait_for(anext(changes), timeout=10)
                delays.append(seen - written)
                await asyncio.sleep(0.3)  # past the stream's minimum gap between checks
    print(
        f"\n[e2e] node B stored, node A's inbox stream said 'change' after "
        f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"({ROUNDS} messages)"
    )
    assert max(delays) < SIGNAL_BOUND_S, delays
