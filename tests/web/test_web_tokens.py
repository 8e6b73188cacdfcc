"""API tokens through the API: list, create, revoke, rotate; roles, workspaces, last use."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from rundfunk.services.actors import Role


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _create(
    client: httpx.AsyncClient, auth: dict[str, str], name: str = "sync", role: str = "editor"
) -> dict[str, Any]:
    response = await client.post("/api/v1/tokens", json={"name": name, "role": role}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_created_token_works_is_listed_without_its_secret_and_revoked_gets_401(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    made = await _create(client, tenant.auth(Role.ADMIN), name="newsletter-sync")
    secret = made["secret"]
    assert secret.startswith("rf_") and made["token"]["prefix"] == secret[:10]
    assert made["token"]["role"] == "editor" and made["token"]["last_used_at"] is None
    # The new token acts with its role at once.
    assert (await client.get("/api/v1/topics", headers=bearer(secret))).status_code == 200

    listed = await client.get("/api/v1/tokens", headers=tenant.auth(Role.ADMIN))
    assert listed.status_code == 200
    assert secret not in listed.text
    names = {t["name"]: t for t in listed.json()["items"]}
    assert names["newsletter-sync"]["id"] == made["token"]["id"]
    assert set(names["newsletter-sync"]) == {
        "id", "name", "role", "prefix", "member_id", "created_at", "last_used_at", "revoked_at"
    }  # fmt: skip
    assert names["newsletter-sync"]["member_id"] == tenant.member_ids[Role.ADMIN]

    revoked = await client.post(
        f"/api/v1/tokens/{made['token']['id']}/revoke", headers=tenant.auth(Role.ADMIN)
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_error(
        await client.get("/api/v1/topics", headers=bearer(secret)), 401, "unauthorized", "revoked"
    )
    after = (await client.get("/api/v1/tokens", headers=tenant.auth())).json()["items"]
    assert made["token"]["id"] not in {t["id"] for t in after}
    everything = (
        await client.get("/api/v1/tokens?include_revoked=true", headers=tenant.auth())
    ).json()["items"]
    assert made["token"]["id"] in {t["id"] for t in everything}
    again = await client.post(
        f"/api/v1/tokens/{made['token']['id']}/revoke", headers=tenant.auth()
    )
    assert_error(again, 404, "not_found", "no active API token")


async def test_rotating_gives_a_new_secret_and_refuses_the_old_one(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    old = await _create(client, tenant.auth(), name="crm", role="agent")
    rotated = await client.post(
        f"/api/v1/tokens/{old['token']['id']}/rotate", headers=tenant.auth()
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["replaces"] == old["token"]["id"]
    assert new["secret"] != old["secret"]
    assert (new["token"]["name"], new["token"]["role"]) == ("crm", "agent")
    assert_error(
        await client.get("/api/v1/contacts", headers=bearer(old["secret"])), 401, "unauthorized"
    )
    assert (await client.get("/api/v1/contacts", headers=bearer(new["secret"]))).status_code == 200
    audit = (await client.get("/api/v1/audit", headers=tenant.auth())).json()["items"]
    actions = [e["action"] for e in audit if e["target_type"] == "api_token"]
    assert actions == ["token.create", "token.rotate"]
    assert secret_free(audit, old["secret"], new["secret"])


def secret_free(entries: list[dict[str, Any]], *secrets: str) -> bool:
    text = repr(entries)
    return not any(secret in text for secret in secrets)


async def test_only_admins_manage_tokens_and_nobody_above_their_role(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    for role in (Role.EDITOR, Role.AGENT):
        listed = await client.get("/api/v1/tokens", headers=tenant.auth(role))
        assert_error(listed, 403, "forbidden")
        denied = await client.post(
            "/api/v1/tokens", json={"name": "x", "role": "agent"}, headers=tenant.auth(role)
        )
        assert_error(denied, 403, "forbidden")
    admin = tenant.auth(Role.ADMIN)
    escalate = await client.post(
        "/api/v1/tokens", json={"name": "x", "role": "owner"}, headers=admin
    )
    assert_error(escalate, 403, "forbidden", "owner", "above your own")
    owner_token = await _create(client, tenant.auth(Role.OWNER), name="root", role="owner")
    token_id = owner_token["token"]["id"]
    for verb in ("revoke", "rotate"):
        refused = await client.post(f"/api/v1/tokens/{token_id}/{verb}", headers=admin)
        assert_error(refused, 403, "forbidden", "owner")
    # Still valid: the refusals changed nothing.
    assert (await client.get("/api/v1/tokens", headers=bearer(owner_token["secret"]))).is_success
    # A token made by an admin token may be an admin at most, and works as one.
    made = await _create(client, admin, name="ops", role="admin")
    assert (await client.get("/api/v1/tokens", headers=bearer(made["secret"]))).is_success


async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    auth = tenant.auth()
    cases = [
        ({"name": "", "role": "agent"}, "name"),
        ({"name": "x" * 201, "role": "agent"}, "name"),
        ({"name": "nul\x00", "role": "agent"}, "name"),
        ({"name": "bell\x07", "role": "agent"}, "control"),
        ({"name": "ok", "role": "king"}, "role"),
        ({"name": "ok", "role": "agent", "extra": 1}, "extra"),
    ]
    for body, fragment in cases:
        response = await client.post("/api/v1/tokens", json=body, headers=auth)
        assert_error(response, 422, response.json()["error"]["code"], fragment)
    assert (await client.post("/api/v1/tokens/0/revoke", headers=auth)).status_code == 422
    assert (await client.post("/api/v1/tokens/abc/rotate", headers=auth)).status_code == 422


async def test_another_workspace_cannot_list_revoke_or_rotate_your_tokens(
    client: httpx.AsyncClient, tenant, make_tenant, assert_error
) -> None:
    other = await make_tenant("rival")
    mine = await _create(client, tenant.auth(), name="mine")
    theirs = (await client.get("/api/v1/tokens", headers=other.auth())).json()["items"]
    assert mine["token"]["id"] not in {t["id"] for t in theirs}
    assert all(t["name"] != "mine" for t in theirs)
    for verb in ("revoke", "rotate"):
        response = await client.post(
            f"/api/v1/tokens/{mine['token']['id']}/{verb}", headers=other.auth()
        )
        assert_error(response, 404, "not_found")
    assert (await client.get("/api/v1/topics", headers=bearer(mine["secret"]))).status_code == 200


async def test_last_used_is_noted_once_not_on_every_request(
    client: httpx.AsyncClient, tenant
) -> None:
    made = await _create(client, tenant.auth(), name="busy", role="agent")
    token_id = made["token"]["id"]

    async def last_used() -> str | None:
        items = (await client.get("/api/v1/tokens", headers=tenant.auth())).json()["items"]
        value: str | None = next(t["last_used_at"] for t in items if t["id"] == token_id)
        return value

    assert await last_used() is None
    assert (await client.get("/api/v1/topics", headers=bearer(made["secret"]))).is_success
    first = None
    for _ in range(100):  # written in the background, just after the request
        first = await last_used()
        if first is not None:
            break
        await asyncio.sleep(0.02)
    assert first is not None
    for _ in range(20):
        assert (await client.get("/api/v1/topics", headers=bearer(made["secret"]))).is_success
    await asyncio.sleep(0.1)
    assert await last_used() == first  # within the minute: not written again
