"""Fixtures for the web tests: a real runtime on a fresh database (``database_url``), the
app, an HTTP client, and workspaces with a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rundfunk.config import Settings
from rundfunk.services import workspaces
from rundfunk.services.actors import Role
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime


@dataclass
class Tenant:
    """One workspace with an API token (and a member) for each role."""

    workspace_id: int
    slug: str
    tokens: dict[Role, str]
    member_ids: dict[Role, int]
    channel_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def auth(self, role: Role = Role.OWNER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        demo=False,
        poll_seconds=0.05,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.create(settings, run_worker=False)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


TenantFactory = Callable[[str], Awaitable[Tenant]]


@pytest.fixture
def make_tenant(runtime: Runtime, client: httpx.AsyncClient) -> TenantFactory:
    """Create a workspace with one member and token per role, plus a sandbox channel."""

    async def make(slug: str) -> Tenant:
        db = runtime.db
        workspace_id = await workspaces.create_workspace(db, slug=slug)
        tokens: dict[Role, str] = {}
        member_ids: dict[Role, int] = {}
        for role in Role:
            member_ids[role] = await workspaces.create_member(
                db, workspace_id=workspace_id, email=f"{role.value}@{slug}.test", role=role
            )
            tokens[role] = await workspaces.create_token(
                db, workspace_id=workspace_id, role=role, member_id=member_ids[role]
            )
        tenant = Tenant(workspace_id, slug, tokens, member_ids)
        response = await client.post(
            "/api/v1/channels",
            json={"kind": "sandbox", "name": f"{slug} sandbox"},
            headers=tenant.auth(),
        )
        assert response.status_code == 201, response.text
        tenant.channel_id = response.json()["id"]
        return tenant

    return make


@pytest.fixture
async def tenant(make_tenant: TenantFactory) -> Tenant:
    return await make_tenant("acme")


PhoneWrites = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def phone(client: httpx.AsyncClient) -> PhoneWrites:
    """A simulated phone writes ``text`` to a sandbox channel; returns the 202 body."""

    async def write(channel_id: int, address: str, text: str, **extra: Any) -> dict[str, Any]:
        response = await client.post(
            f"/sandbox/{channel_id}/phones/{address}/messages", json={"text": text, **extra}
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    return write


def _assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message, body
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (fragment, message)
    return message


@pytest.fixture
def assert_error() -> Callable[..., str]:
    """Check the documented error shape and that the message says something useful."""
    return _assert_error
