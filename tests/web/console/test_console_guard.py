"""Every console route is behind a session and CSRF: a guard over all of them.

The route list comes from the console's own routers, so a page added later is
checked too: without a session a page sends the browser to the sign-in page and a
script gets 401; with a session, any state-changing request without the session's
CSRF token is refused with 403 and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from rundfunk.services.actors import Role
from rundfunk.web.ui import AREAS, simulator

# Shown before anyone is signed in; each checks its own form cookie instead.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/invite/{token}"),
    ("POST", "/invite/{token}"),
}


def _routes(routes: list[Any]) -> list[APIRoute]:
    flat: list[APIRoute] = []
    for route in routes:
        nested = getattr(route, "original_router", None)  # an included router
        if nested is not None:
            flat.extend(_routes(nested.routes))
        else:
            assert isinstance(route, APIRoute), route
            flat.append(route)
    return flat


def console_routes() -> list[tuple[str, str, APIRoute]]:
    found = []
    for module in (*AREAS, simulator):
        for route in _routes(module.router.routes):
            for method in sorted(route.methods):
                found.append((method, route.path, route))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _guarded(route: APIRoute) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if getattr(dependency.call, "__name__", "").startswith("console_"):
            return True
        pending.extend(dependency.dependencies)
    return False


def test_the_guard_sees_the_console() -> None:
    paths = {path for _method, path, _route in console_routes()}
    assert {"/login", "/logout", "/account"} <= paths


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [r for r in console_routes() if r[:2] not in PUBLIC],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_every_console_route_needs_a_session_and_csrf(
    client: httpx.AsyncClient, console: Any, method: str, path: str, route: APIRoute
) -> None:
    assert _guarded(route), f"{method} {path} does not depend on a console role"
    url = _concrete(path)
    anonymous = await client.request(method, url, headers={"accept": "text/html"})
    if method == "GET":
        assert anonymous.status_code == 303, anonymous.text
        assert anonymous.headers["location"].startswith("/login?next=")
    else:
        assert anonymous.status_code == 401, anonymous.text
        owner = await console(Role.OWNER)
        refused = await owner.post(url, {"anything": "x"}, csrf=False)
        assert refused.status_code == 403, refused.text
        assert "did not come from this site" in refused.text
