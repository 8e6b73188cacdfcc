"""The guard for URLs a workspace chooses: refused at save time and again at connect time.

A real aiohttp server on loopback stands for an internal service. A resolver of the
test's own stands for the DNS an attacker controls: it answers a public address first
(the save-time check passes) and 127.0.0.1 later (DNS rebinding). Nothing connects to
the public address: the save-time check only resolves it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from rundfunk.config import Settings
from rundfunk.core.addresses import parse_networks
from rundfunk.outbound import AddressRefused, check_url, guarded_session

PUBLIC = "93.184.216.34"


class RebindingResolver(AbstractResolver):
    """Answers each name with the next address of its list (the last one from then on)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = {name: list(addresses) for name, addresses in answers.items()}
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(f"no such host {host}")
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def internal() -> AsyncIterator[dict[str, Any]]:
    """An "internal service" on 127.0.0.1 that counts the requests reaching it."""
    seen: dict[str, Any] = {"requests": 0}

    async def handle(_request: web.Request) -> web.Response:
        seen["requests"] += 1
        return web.Response(text="internal secrets")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    seen["port"] = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        await runner.cleanup()


# --- at save time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://[::1]:8080/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_an_internal_address_is_refused_at_save_time(url: str) -> None:
    with pytest.raises(AddressRefused, match="RUNDFUNK_ALLOWED_PRIVATE_NETWORKS"):
        await check_url(url)


async def test_a_name_resolving_to_an_internal_address_is_refused_at_save_time() -> None:
    resolver = RebindingResolver({"hooks.example.test": ["192.168.1.20"]})
    with pytest.raises(AddressRefused, match=r"hooks\.example\.test resolves to 192\.168\.1\.20"):
        await check_url("https://hooks.example.test/in", resolver=resolver)
    resolver = RebindingResolver({"ok.example.test": [PUBLIC]})
    await check_url("https://ok.example.test/in", resolver=resolver)  # public: fine


@pytest.mark.parametrize("url", ["ftp://example.test/x", "file:///etc/passwd", "http:///x", "x"])
async def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        await check_url(url)


async def test_the_operator_may_allow_a_network_at_save_time() -> None:
    await check_url("http://10.0.0.7/hook", allowed=parse_networks("10.0.0.0/24"))
    with pytest.raises(AddressRefused):
        await check_url("http://10.0.1.7/hook", allowed=parse_networks("10.0.0.0/24"))


# --- at connect time ---------------------------------------------------------------------


async def test_dns_rebinding_is_refused_at_connect_time(internal: dict[str, Any]) -> None:
    name = "rebind.example.test"
    resolver = RebindingResolver({name: [PUBLIC, "127.0.0.1"]})
    url = f"http://{name}:{internal['port']}/hook"
    await check_url(url, resolver=resolver)  # saved: it resolved to a public address
    async with guarded_session(resolver=resolver) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.post(url, json={"event": "x"})
    assert isinstance(refused.value.os_error, AddressRefused)
    assert "resolves to 127.0.0.1, a loopback address" in str(refused.value)
    assert internal["requests"] == 0  # nothing reached the internal service
    assert resolver.asked == [name, name]  # the connection's own lookup was checked


async def test_an_ip_literal_and_a_redirect_are_refused_at_connect_time(
    internal: dict[str, Any],
) -> None:
    async with guarded_session() as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="loopback"):
            await session.get(f"http://127.0.0.1:{internal['port']}/")

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.5:{internal['port']}/after-redirect")

    app = web.Application()
    app.router.add_get("/", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        # The redirecting host is allowed (its own /32); where it points is not.
        resolver = RebindingResolver({"allowed.example.test": ["127.0.0.1"]})
        allowed = parse_networks("127.0.0.1/32")
        async with guarded_session(allowed=allowed, resolver=resolver) as session:
            with pytest.raises(aiohttp.ClientConnectorError, match="127.0.0.5, a loopback"):
                await session.get(f"http://allowed.example.test:{port}/")
    finally:
        await runner.cleanup()
    assert internal["requests"] == 0


async def test_a_network_the_operator_allows_is_reached(internal: dict[str, Any]) -> None:
    settings = Settings(allowed_private_networks="127.0.0.0/8")
    resolver = RebindingResolver({"internal.example.test": ["127.0.0.1"]})
    url = f"http://internal.example.test:{internal['port']}/hook"
    await check_url(url, allowed=settings.private_networks, resolver=resolver)
    async with (
        guarded_session(allowed=settings.private_networks, resolver=resolver) as session,
        session.post(url, json={}) as response,
    ):
        assert response.status == 200
    assert internal["requests"] == 1


def test_a_bad_network_setting_stops_the_start() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/99' is not a network"):
        Settings(allowed_private_networks="10.0.0.0/99")
