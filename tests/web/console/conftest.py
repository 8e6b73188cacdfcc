"""Fixtures for in-process console tests: a signed-in member of a role, as a client.

``console(role)`` opens a real session for the tenant's member of that role and gives
a small client that sends the session cookie, and the session's CSRF token with every
POST (``post(..., csrf=False)`` leaves it out, to test the refusal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rundfunk.services import sessions
from rundfunk.services.actors import Role
from rundfunk.web.ui.session import SESSION_COOKIE
from rundfunk.worker.runtime import Runtime

HTML = {"accept": "text/html"}


@dataclass
class Console:
    http: httpx.AsyncClient
    token: str
    csrf: str
    member: sessions.SessionMember

    @property
    def _cookie(self) -> dict[str, str]:
        return {"cookie": f"{SESSION_COOKIE}={self.token}", **HTML}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=self._cookie, **kwargs)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return await self.http.post(path, data=form, headers=self._cookie, **kwargs)


ConsoleFactory = Callable[..., Awaitable[Console]]


@pytest.fixture
def console(client: httpx.AsyncClient, runtime: Runtime, tenant: Any) -> ConsoleFactory:
    """``await console(Role.AGENT)``: signed in as the tenant's agent (any tenant via ``of=``)."""

    async def sign_in(role: Role = Role.OWNER, *, of: Any = None) -> Console:
        owner = of or tenant
        new = await sessions.open_session(runtime.db, member_id=owner.member_ids[role])
        member = await sessions.session_member(runtime.db, new.token)
        assert member is not None
        return Console(client, new.token, member.csrf_token, member)

    return sign_in
