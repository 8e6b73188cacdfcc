"""Workspace isolation: workspace B never reads or changes A's data through any route.

Every ``/api/v1`` route of the app is listed below; a guard test fails when a route is
added without a case here.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rundfunk.channels.base import InboundMessage
from rundfunk.db.types import utcnow
from rundfunk.services import dead_letters
from rundfunk.services.actors import Role
from rundfunk.web.app import create_app


async def _dead_letter(client: httpx.AsyncClient, runtime: Any, tenant: Any) -> int:
    """A webhook item of ``tenant``'s channel that could not be applied."""
    item = InboundMessage(address="4909", provider_message_id="in-dead-1", timestamp=utcnow())
    async with runtime.db.write() as conn:
        await dead_letters.record(
            conn, channel_id=tenant.channel_id, event=item, error=ValueError("refused")
        )
    listed = await client.get("/api/v1/webhooks/failed", headers=tenant.auth())
    return int(listed.json()["items"][0]["id"])


@pytest.fixture
async def world(client: httpx.AsyncClient, make_tenant, phone, runtime) -> dict[str, Any]:
    """Workspace A with one of everything, and an empty workspace B."""
    a = await make_tenant("alpha")
    b = await make_tenant("beta")
    auth = a.auth()
    topic = (
        await client.post("/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=auth)
    ).json()
    subscribed = await phone(a.channel_id, "4901", "START sport")
    talking = await phone(a.channel_id, "4902", "hello from A")
    broadcast = (
        await client.post(
            "/api/v1/broadcasts", json={"channel_id": a.channel_id, "text": "A only"}, headers=auth
        )
    ).json()
    b_conversation = await phone(b.channel_id, "4903", "hello from B")
    return {
        "a": a,
        "b": b,
        "channel": a.channel_id,
        "topic": topic,
        "contact": subscribed["contact_id"],
        "conversation": talking["conversation_id"],
        "broadcast": broadcast["id"],
        "a_member": a.member_ids[Role.AGENT],
        "b_conversation": b_conversation["conversation_id"],
        "dead_letter": await _dead_letter(client, runtime, a),
        "token": await _token_id(client, a, Role.AGENT),
    }


async def _token_id(client: httpx.AsyncClient, tenant: Any, role: Role) -> int:
    """The id of ``tenant``'s API token of ``role`` (found by its prefix)."""
    listed = (await client.get("/api/v1/tokens", headers=tenant.auth())).json()["items"]
    [found] = [t["id"] for t in listed if tenant.tokens[role].startswith(t["prefix"])]
    return int(found)


# Marks a case that uploads a file (multipart) instead of sending JSON.
UPLOAD: dict[str, Any] = {"file": ("logo.png", b"\x89PNG\r\n\x1a\n", "image/png")}


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    if body is UPLOAD:
        return await client.request(method, path, files=body, headers=headers)
    return await client.request(method, path, json=body, headers=headers)


def by_id_cases(w: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, json) for each route that takes one of A's ids."""
    ch, ct, bc, cv = w["channel"], w["contact"], w["broadcast"], w["conversation"]
    return [
        ("GET", f"/api/v1/channels/{ch}", None),
        ("PATCH", f"/api/v1/channels/{ch}", {"name": "taken over"}),
        ("POST", f"/api/v1/channels/{ch}/templates/sync", None),
        ("GET", f"/api/v1/channels/{ch}/templates", None),
        ("GET", f"/api/v1/channels/{ch}/profile", None),
        ("PATCH", f"/api/v1/channels/{ch}/profile", {"about": "hijacked"}),
        ("POST", f"/api/v1/channels/{ch}/media", UPLOAD),
        ("GET", f"/api/v1/channels/{ch}/links", None),
        ("GET", f"/api/v1/channels/{ch}/links/qr.png", None),
        ("GET", f"/api/v1/channels/{ch}/links/qr.svg", None),
        ("GET", f"/api/v1/contacts/{ct}", None),
        ("GET", f"/api/v1/contacts/{ct}/export", None),
        ("DELETE", f"/api/v1/contacts/{ct}", None),
        ("POST", f"/api/v1/contacts/{ct}/block", None),
        ("POST", f"/api/v1/contacts/{ct}/unblock", None),
        ("GET", f"/api/v1/contacts/{ct}/blocked-messages", None),
        ("POST", f"/api/v1/tokens/{w['token']}/revoke", None),
        ("POST", f"/api/v1/tokens/{w['token']}/rotate", None),
        ("GET", f"/api/v1/broadcasts/{bc}", None),
        ("POST", f"/api/v1/broadcasts/{bc}/send", None),
        ("POST", f"/api/v1/broadcasts/{bc}/pause", None),
        ("POST", f"/api/v1/broadcasts/{bc}/cancel", None),
        ("GET", f"/api/v1/broadcasts/{bc}/deliveries", None),
        ("GET", f"/api/v1/conversations/{cv}", None),
        ("GET", f"/api/v1/conversations/{cv}/messages", None),
        ("POST", f"/api/v1/conversations/{cv}/messages", {"text": "from B"}),
        ("POST", f"/api/v1/conversations/{cv}/notes", {"text": "from B"}),
        ("POST", f"/api/v1/conversations/{cv}/assign", {"member_id": None}),
        ("POST", f"/api/v1/conversations/{cv}/resolve", None),
        ("POST", f"/api/v1/conversations/{cv}/reopen", None),
        # B's own conversation, but A's member: no cross-workspace assignment.
        (
            "POST",
            f"/api/v1/conversations/{w['b_conversation']}/assign",
            {"member_id": w["a_member"]},
        ),
        # B's broadcast on A's channel.
        ("POST", "/api/v1/broadcasts", {"channel_id": ch, "text": "hijack"}),
        ("POST", f"/api/v1/webhooks/failed/{w['dead_letter']}/retry", None),
        ("DELETE", f"/api/v1/webhooks/failed/{w['dead_letter']}", None),
    ]


def list_cases(w: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, params) for each listing; B must see none of A's rows."""
    ch = w["channel"]
    return [
        ("GET", "/api/v1/channels", {}),
        ("GET", "/api/v1/topics", {}),
        ("GET", "/api/v1/contacts", {}),
        ("GET", "/api/v1/contacts", {"channel_id": ch}),
        ("GET", "/api/v1/contacts", {"topic": "sport"}),
        ("GET", "/api/v1/contacts", {"search": "490"}),
        ("GET", "/api/v1/broadcasts", {}),
        ("GET", "/api/v1/conversations", {}),
        ("GET", "/api/v1/conversations", {"channel_id": ch}),
        ("GET", "/api/v1/members", {}),
        ("GET", "/api/v1/audit", {}),
        ("GET", "/api/v1/tokens", {}),
        ("GET", "/api/v1/webhooks/failed", {}),
        ("GET", "/api/v1/webhooks/failed", {"channel_id": ch}),
    ]


# Routes about the caller's own workspace only: no id of anyone else's to pass.
OWN_WORKSPACE = [
    ("GET", "/api/v1/workspace"),
    ("PATCH", "/api/v1/workspace"),
    ("POST", "/api/v1/channels"),
    ("POST", "/api/v1/topics"),
    ("POST", "/api/v1/tokens"),  # a token of the caller's workspace, at most its role
]


async def test_b_gets_404_for_every_route_with_an_id_of_a(
    client: httpx.AsyncClient, world, assert_error
) -> None:
    for role in (Role.OWNER, Role.AGENT):
        for method, path, body in by_id_cases(world):
            response = await _call(client, method, path, body, world["b"].auth(role))
            if role is Role.AGENT and response.status_code == 403:
                continue  # refused for the role before the id was even looked at
            assert_error(response, 404, "not_found")


async def test_a_sees_nothing_changed_by_b(client: httpx.AsyncClient, world) -> None:
    for method, path, body in by_id_cases(world):
        await _call(client, method, path, body, world["b"].auth())
    auth = world["a"].auth()
    broadcast = (await client.get(f"/api/v1/broadcasts/{world['broadcast']}", headers=auth)).json()
    assert broadcast["status"] == "draft"
    conversation_url = f"/api/v1/conversations/{world['conversation']}"
    conversation = (await client.get(conversation_url, headers=auth)).json()
    assert conversation["status"] == "open"
    messages = (await client.get(f"{conversation_url}/messages", headers=auth)).json()["items"]
    assert [m["text"] for m in messages] == ["hello from A"]
    contact = await client.get(f"/api/v1/contacts/{world['contact']}", headers=auth)
    assert contact.status_code == 200 and contact.json()["consent_history"]
    failed = (await client.get("/api/v1/webhooks/failed", headers=auth)).json()["items"]
    assert [item["id"] for item in failed] == [world["dead_letter"]]
    assert contact.json()["blocked"] is False
    agent = await client.get("/api/v1/contacts", headers=world["a"].auth(Role.AGENT))
    assert agent.status_code == 200  # A's token neither revoked nor rotated by B


async def test_b_lists_none_of_as_rows(client: httpx.AsyncClient, world) -> None:
    a_ids = {
        "/api/v1/channels": {world["channel"]},
        "/api/v1/topics": {world["topic"]["id"]},
        "/api/v1/contacts": {world["contact"]},
        "/api/v1/broadcasts": {world["broadcast"]},
        "/api/v1/conversations": {world["conversation"]},
        "/api/v1/members": set(world["a"].member_ids.values()),
        "/api/v1/webhooks/failed": {world["dead_letter"]},
        "/api/v1/tokens": {world["token"]},
    }
    # A's audit entries (channel, topic, broadcast created): if the log were not scoped,
    # A's own listing would hold B's entries too and B's would overlap it.
    a_audit = await client.get("/api/v1/audit", headers=world["a"].auth())
    a_ids["/api/v1/audit"] = {item["id"] for item in a_audit.json()["items"]}
    for method, path, params in list_cases(world):
        response = await client.request(method, path, params=params, headers=world["b"].auth())
        assert response.status_code == 200, (path, response.text)
        seen = {item["id"] for item in response.json()["items"]}
        assert not seen & a_ids[path], (path, params, seen)
        # and A does see its own, so the check above is not vacuous
        own = await client.request(method, path, params=params, headers=world["a"].auth())
        assert {item["id"] for item in own.json()["items"]} & a_ids[path], (path, params)


async def test_workspace_settings_are_per_workspace(client: httpx.AsyncClient, world) -> None:
    await client.patch("/api/v1/workspace", json={"name": "Beta GmbH"}, headers=world["b"].auth())
    a = (await client.get("/api/v1/workspace", headers=world["a"].auth())).json()
    b = (await client.get("/api/v1/workspace", headers=world["b"].auth())).json()
    assert (a["id"], a["name"]) == (world["a"].workspace_id, "alpha")
    assert (b["id"], b["name"]) == (world["b"].workspace_id, "Beta GmbH")


def test_every_api_route_has_an_isolation_case(settings, runtime) -> None:
    app = create_app(settings, runtime=runtime)
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    assert len(routes) > 20
    fake = {
        "channel": 1,
        "contact": 2,
        "broadcast": 3,
        "conversation": 4,
        "a_member": 5,
        "b_conversation": 6,
        "dead_letter": 7,
        "token": 8,
    }
    covered = set(OWN_WORKSPACE)
    templates = {
        str(fake[k]): f"{{{k}_id}}" for k in ("channel", "contact", "broadcast", "conversation")
    }
    templates[str(fake["b_conversation"])] = "{conversation_id}"
    templates[str(fake["dead_letter"])] = "{dead_letter_id}"
    templates[str(fake["token"])] = "{token_id}"
    templates["qr.png"] = templates["qr.svg"] = "qr.{fmt}"
    for method, path, _ in by_id_cases(fake):
        parts = [templates.get(part, part) for part in path.split("/")]
        covered.add((method, "/".join(parts)))
    covered |= {(method, path) for method, path, _ in list_cases(fake)}
    missing = routes - covered
    assert not missing, f"routes without an isolation case: {sorted(missing)}"
    stale = covered - routes
    assert not stale, f"isolation cases for routes that do not exist: {sorted(stale)}"
