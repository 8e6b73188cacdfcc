"""The console's front door over HTTP: sign-in form, its CSRF cookie, throttling,
redirects, first-run setup, sign-out, and the account page."""

from __future__ import annotations

import re
from typing import Any

import httpx

from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Role
from rundfunk.web.ui.session import FORM_COOKIE, SESSION_COOKIE
from rundfunk.worker.runtime import Runtime

PASSWORD = "a long enough password"
HTML = {"accept": "text/html"}


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field"
    return found.group(1)


async def _sign_in_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/login", headers=HTML)
    assert page.status_code == 200, page.text
    assert client.cookies.get(FORM_COOKIE)
    return _field(page.text, "csrf_token")


async def _member(runtime: Runtime, tenant: Any, email: str = "ana@acme.test") -> int:
    return await ws.create_member(
        runtime.db, workspace_id=tenant.workspace_id, email=email, role=Role.EDITOR,
        password=PASSWORD,
    )  # fmt: skip


async def test_sign_in_sets_a_session_cookie_and_follows_next(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    await _member(runtime, tenant)
    token = await _sign_in_form(client)
    answer = await client.post(
        "/login",
        data={"csrf_token": token, "email": "ana@acme.test", "password": PASSWORD,
              "next": "/account"},
    )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/account"
    cookie = answer.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    account = await client.get("/account", headers=HTML)
    assert account.status_code == 200 and "ana@acme.test" in account.text
    assert account.headers["content-security-policy"].startswith("default-src 'self'")
    assert account.headers["x-frame-options"] == "DENY"


async def test_sign_in_never_redirects_off_site(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    await _member(runtime, tenant)
    token = await _sign_in_form(client)
    answer = await client.post(
        "/login",
        data={"csrf_token": token, "email": "ana@acme.test", "password": PASSWORD,
              "next": "//evil.example/steal"},
    )  # fmt: skip
    assert answer.headers["location"] == "/dashboard"


async def test_a_sign_in_post_without_the_form_cookie_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    await _member(runtime, tenant)
    answer = await client.post(
        "/login", data={"csrf_token": "forged", "email": "ana@acme.test", "password": PASSWORD}
    )
    assert answer.status_code == 403
    assert "did not come from this site" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_wrong_passwords_show_an_error_and_then_throttle(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    await _member(runtime, tenant)
    token = await _sign_in_form(client)
    form = {"csrf_token": token, "email": "ana@acme.test", "password": "wrong"}
    first = await client.post("/login", data=form)
    assert first.status_code == 422
    assert 'id="e-password"' in first.text and "the password is wrong" in first.text
    assert 'value="ana@acme.test"' in first.text  # what was typed is kept
    for _ in range(4):
        await client.post("/login", data=form)
    locked = await client.post("/login", data={**form, "password": PASSWORD})
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.text


async def test_setup_is_offered_until_someone_can_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.get("/", headers=HTML)).headers["location"] == "/setup"
    assert (await client.get("/login", headers=HTML)).headers["location"] == "/setup"
    page = await client.get("/setup", headers=HTML)
    token = _field(page.text, "csrf_token")
    bad = await client.post(
        "/setup", data={"csrf_token": token, "workspace": "Kiosk", "email": "ana@kiosk.de",
                        "password": "short"},
    )  # fmt: skip
    assert bad.status_code == 422 and 'id="e-password"' in bad.text
    assert 'value="Kiosk"' in bad.text
    done = await client.post(
        "/setup", data={"csrf_token": token, "workspace": "Kiosk", "name": "Ana",
                        "email": "ana@kiosk.de", "password": PASSWORD},
    )  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"
    assert (await client.get("/account", headers=HTML)).status_code == 200
    client.cookies.clear()
    assert (await client.get("/setup", headers=HTML)).headers["location"] == "/login"
    assert (await client.get("/", headers=HTML)).headers["location"] == "/login"


async def test_sign_out_needs_csrf_and_ends_the_session(console: Any) -> None:
    agent = await console(Role.AGENT)
    assert (await agent.post("/logout", csrf=False)).status_code == 403
    assert (await agent.get("/account")).status_code == 200
    out = await agent.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    again = await agent.get("/account")
    assert again.status_code == 303 and again.headers["location"] == "/login?next=/account"


async def test_password_change_errors_stand_next_to_their_field(console: Any) -> None:
    agent = await console(Role.AGENT)
    response = await agent.post(
        "/account/password", {"current_password": "x", "new_password": "long enough!"}
    )
    assert response.status_code == 422
    assert 'id="e-current_password"' in response.text


async def test_scripts_without_a_session_get_401_not_a_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/account", headers={"accept": "text/event-stream"})
    assert response.status_code == 401
