"""Who may use the unauthenticated sandbox phones: clients on this machine, unless the
operator opens them (``RUNDFUNK_SANDBOX_PUBLIC``); the console's simulator from anywhere.

The client address is the ASGI peer, as uvicorn passes it: ``ASGITransport(client=…)``
stands for a request from another machine; a proxy header is never trusted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from rundfunk.config import Settings
from rundfunk.services import sessions
from rundfunk.services.actors import Role
from rundfunk.web.app import create_app
from rundfunk.web.ui.session import SESSION_COOKIE
from rundfunk.worker.runtime import Runtime

ELSEWHERE = ("203.0.113.5", 41234)  # TEST-NET-3: never routed, only a label here


def _client(settings: Settings, runtime: Runtime, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime), client=peer)
    return httpx.AsyncClient(transport=transport, base_url="http://rundfunk.example")


@pytest.fixture
async def remote(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(settings, runtime, ELSEWHERE) as http:
        yield http


async def test_phones_refuse_other_machines(
    remote: httpx.AsyncClient, tenant, assert_error
) -> None:
    url = f"/sandbox/{tenant.channel_id}/phones/4911/messages"
    for response in (await remote.get(url), await remote.post(url, json={"text": "START"})):
        assert_error(response, 403, "forbidden", "only clients on this machine",
                     "RUNDFUNK_SANDBOX_PUBLIC=true")  # fmt: skip
    # Refused before anything is looked at: an invalid body or unknown channel says nothing.
    assert_error(await remote.post("/sandbox/999/phones/4911/messages", json={}), 403, "forbidden")


async def test_phones_answer_this_machine_but_not_through_a_proxy(
    settings: Settings, runtime: Runtime, tenant, assert_error
) -> None:
    url = f"/sandbox/{tenant.channel_id}/phones/4911/messages"
    for peer in (("127.0.0.1", 5000), ("::1", 5000)):
        async with _client(settings, runtime, peer) as local:
            assert (await local.post(url, json={"text": "START"})).status_code == 202
            assert (await local.get(url)).status_code == 200
    async with _client(settings, runtime, ("127.0.0.1", 5000)) as proxied:
        for header in ({"X-Forwarded-For": "203.0.113.5"}, {"Forwarded": "for=203.0.113.5"}):
            assert_error(await proxied.get(url, headers=header), 403, "forbidden")


async def test_the_operator_may_open_them_to_everyone(
    settings: Settings, runtime: Runtime, tenant
) -> None:
    opened = settings.model_copy(update={"sandbox_public": True})
    url = f"/sandbox/{tenant.channel_id}/phones/4911/messages"
    async with _client(opened, runtime, ELSEWHERE) as remote:
        assert (await remote.post(url, json={"text": "START"})).status_code == 202
        received = await remote.get(url)
        assert received.status_code == 200 and isinstance(received.json(), list)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().sandbox_public is False
    monkeypatch.setenv("RUNDFUNK_SANDBOX_PUBLIC", "true")
    assert Settings().sandbox_public is True


async def test_openapi_declares_the_403(remote: httpx.AsyncClient) -> None:
    paths = (await remote.get("/openapi.json")).json()["paths"]
    for operation in paths["/sandbox/{channel_id}/phones/{address}/messages"].values():
        assert "403" in operation["responses"]


async def test_the_console_simulator_works_from_anywhere(
    remote: httpx.AsyncClient, runtime: Runtime, tenant
) -> None:
    """The simulator writes and reads through its own signed-in routes, not /sandbox."""
    session = await sessions.open_session(runtime.db, member_id=tenant.member_ids[Role.AGENT])
    member = await sessions.session_member(runtime.db, session.token)
    assert member is not None
    cookie = {"cookie": f"{SESSION_COOKIE}={session.token}"}
    wrote = await remote.post(
        "/simulator/phones/4915100000001/messages",
        data={"channel": str(tenant.channel_id), "text": "START"},
        headers={**cookie, "x-csrf-token": member.csrf_token, "accept": "*/*"},
    )
    assert wrote.status_code == 200, wrote.text
    assert "START" in wrote.text  # the phone's thread, with what it wrote
    page = await remote.get(f"/simulator?channel={tenant.channel_id}",
                            headers={**cookie, "accept": "text/html"})  # fmt: skip
    assert page.status_code == 200 and "START" in page.text
