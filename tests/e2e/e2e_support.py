"""Helpers shared by the end-to-end tests: polling, bounded concurrency, the phone API.

Kept out of ``conftest.py`` so test modules can import them by name (``tests/e2e`` is
on ``sys.path`` under pytest's default ``prepend`` import mode).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true in time; the message says what was last seen."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {text}; last: {last!r}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {text}; last: {last!r}")
        await asyncio.sleep(interval)


async def gather_bounded(
    factories: Iterable[Callable[[], Awaitable[T]]], limit: int = 50
) -> list[T]:
    """Run coroutine factories with at most ``limit`` in flight; results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories))


def tag() -> str:
    """A unique marker to put into texts, so copies on a phone can be counted."""
    return uuid.uuid4().hex


def addresses(prefix: str, count: int) -> list[str]:
    """``count`` distinct phone numbers like ``4915<prefix>00001``."""
    return [f"4915{prefix}{i:05d}" for i in range(1, count + 1)]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The documented error shape: ``{"error": {"code": str, "message": str}}``."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: expected {status}, "
        f"got {response.status_code}: {response.text[:500]}"
    )
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {response.text[:500]!r}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return error


class Phones:
    """The sandbox's simulated phones of one channel, over an ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient, channel_id: int) -> None:
        self.client = client
        self.channel_id = channel_id

    def _url(self, address: str) -> str:
        return f"/sandbox/{self.channel_id}/phones/{address}/messages"

    async def write(self, address: str, text: str, **extra: Any) -> dict[str, Any]:
        response = await self.client.post(self._url(address), json={"text": text, **extra})
        assert response.status_code == 202, (
            f"{address} wrote {text!r}: {response.status_code} {response.text}"
        )
        body: dict[str, Any] = response.json()
        return body

    async def write_many(
        self, items: Iterable[tuple[str, str]], limit: int = 50, **extra: Any
    ) -> list[dict[str, Any]]:
        return await gather_bounded(
            [lambda a=a, t=t: self.write(a, t, **extra) for a, t in items], limit=limit
        )

    async def inbox(self, address: str) -> list[dict[str, Any]]:
        response = await self.client.get(self._url(address))
        assert response.status_code == 200, (
            f"inbox of {address}: {response.status_code} {response.text}"
        )
        body: list[dict[str, Any]] = response.json()
        assert isinstance(body, list), body
        return body

    async def inboxes(
        self, addresses: Iterable[str], limit: int = 50
    ) -> dict[str, list[dict[str, Any]]]:
        wanted = list(addresses)
        found = await gather_bounded([lambda a=a: self.inbox(a) for a in wanted], limit=limit)
        return dict(zip(wanted, found, strict=True))


def copies(inbox: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """The messages on a phone whose text carries ``marker``."""
    return [m for m in inbox if marker in (m.get("text") or "")]


async def create_channel(
    client: httpx.AsyncClient, name: str, settings: dict[str, Any] | None = None
) -> int:
    body: dict[str, Any] = {"kind": "sandbox", "name": name}
    if settings is not None:
        body["settings"] = settings
    response = await client.post("/api/v1/channels", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["kind"] == "sandbox" and created["name"] == name, created
    return int(created["id"])


async def get_broadcast(client: httpx.AsyncClient, broadcast_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/broadcasts/{broadcast_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_broadcast_done(
    client: httpx.AsyncClient, broadcast_id: int, timeout: float = 60.0
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def done() -> dict[str, Any] | None:
        seen.update(await get_broadcast(client, broadcast_id))
        assert seen["status"] not in {"paused", "cancelled"}, f"broadcast stopped: {seen}"
        return dict(seen) if seen["status"] == "done" else None

    return await async_wait_until(
        done,
        timeout=timeout,
        interval=0.1,
        message=lambda: f"broadcast {broadcast_id} done ({seen})",
    )


async def list_all(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list endpoint (``limit`` / ``after_id`` / ``next_after_id``)."""
    items: list[dict[str, Any]] = []
    after: int | None = None
    for _ in range(10_000):
        query = {**params, "limit": params.get("limit", 100)}
        if after is not None:
            query["after_id"] = after
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        after = body.get("next_after_id")
        if not after or not body["items"]:
            return items
    raise AssertionError(f"{path} never stopped paginating")
