"""The team page's API tokens section: create (shown once), rotate, revoke; CSRF, roles,
German; a revoked token is refused by the API at once."""

from __future__ import annotations

import re
from typing import Any

import httpx

from rundfunk.services import api_tokens
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime

SECRET = re.compile(r'id="token-secret"[^>]*value="(rf_[\w-]+)"')


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _tokens(runtime: Runtime, tenant: Any) -> list[api_tokens.TokenInfo]:
    from rundfunk.services.actors import system_actor

    return await api_tokens.list_tokens(runtime.db, actor=system_actor(tenant.workspace_id))


async def test_create_shows_the_secret_once_and_rotate_and_revoke_take_effect(
    console: Any, client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    admin = await console(Role.ADMIN)
    page = await admin.get("/team")
    assert page.status_code == 200 and 'id="api-tokens"' in page.text
    assert "Last used" in page.text

    made = await admin.post("/team/tokens", {"token_name": "zapier", "token_role": "agent"})
    assert made.status_code == 200, made.text
    match = SECRET.search(made.text)
    assert match, made.text
    secret = match.group(1)
    assert (await client.get("/api/v1/contacts", headers=bearer(secret))).status_code == 200
    again = await admin.get("/team")
    assert "zapier" in again.text and secret not in again.text  # shown once only
    assert secret[:10] in again.text  # its prefix identifies it
    [token] = [t for t in await _tokens(runtime, tenant) if t.name == "zapier"]

    rotated = await admin.post(f"/team/tokens/{token.id}/rotate")
    assert rotated.status_code == 200, rotated.text
    new_match = SECRET.search(rotated.text)
    assert new_match and new_match.group(1) != secret
    assert "no longer works" in rotated.text
    assert (await client.get("/api/v1/contacts", headers=bearer(secret))).status_code == 401
    new_secret = new_match.group(1)
    assert (await client.get("/api/v1/contacts", headers=bearer(new_secret))).status_code == 200

    [successor] = [t for t in await _tokens(runtime, tenant) if t.name == "zapier"]
    revoked = await admin.post(f"/team/tokens/{successor.id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"].startswith("/team")
    assert (await client.get("/api/v1/contacts", headers=bearer(new_secret))).status_code == 401
    assert all(t.name != "zapier" for t in await _tokens(runtime, tenant))


async def test_forms_need_csrf_and_the_admin_role_and_refuse_escalation(
    console: Any, client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    admin = await console(Role.ADMIN)
    forged = await admin.post(
        "/team/tokens", {"token_name": "x", "token_role": "agent"}, csrf=False
    )
    assert forged.status_code == 403
    editor = await console(Role.EDITOR)
    assert (await editor.get("/team")).status_code == 403
    denied = await editor.post("/team/tokens", {"token_name": "x", "token_role": "agent"})
    assert denied.status_code == 403
    assert all(t.name != "x" for t in await _tokens(runtime, tenant))

    # An admin is offered no owner role and is refused one sent by hand.
    page = await admin.get("/team")
    assert '<option value="owner"' not in page.text.split('id="api-tokens"')[1]
    escalate = await admin.post("/team/tokens", {"token_name": "x", "token_role": "owner"})
    assert escalate.status_code == 403 and 'id="e-token_role"' in escalate.text
    blank = await admin.post("/team/tokens", {"token_name": " ", "token_role": "agent"})
    assert blank.status_code == 422 and 'id="e-token_name"' in blank.text
    # The owner's own token can be neither rotated nor revoked by an admin.
    owner_token = next(t for t in await _tokens(runtime, tenant) if t.role is Role.OWNER)
    for verb in ("rotate", "revoke"):
        refused = await admin.post(f"/team/tokens/{owner_token.id}/{verb}")
        assert refused.status_code == 403, refused.text
    assert (await client.get("/api/v1/tokens", headers=tenant.auth(Role.OWNER))).is_success


async def test_another_workspace_cannot_touch_the_tokens(
    console: Any, client: httpx.AsyncClient, runtime: Runtime, tenant: Any, make_tenant: Any
) -> None:
    other = await make_tenant("rival")
    rival = await console(Role.OWNER, of=other)
    victim = next(t for t in await _tokens(runtime, tenant) if t.role is Role.AGENT)
    for verb in ("rotate", "revoke"):
        assert (await rival.post(f"/team/tokens/{victim.id}/{verb}")).status_code == 404
    page = await rival.get("/team")
    assert victim.prefix not in page.text
    assert (await client.get("/api/v1/contacts", headers=tenant.auth(Role.AGENT))).is_success


async def test_the_tokens_section_speaks_german(console: Any) -> None:
    admin = await console(Role.ADMIN)
    assert (await admin.post("/account/language", {"locale": "de"})).status_code == 303
    made = await admin.post("/team/tokens", {"token_name": "crm", "token_role": "editor"})
    assert "Neues API-Token: crm" in made.text
    assert "Zuletzt benutzt" in made.text and "Widerrufen" in made.text
