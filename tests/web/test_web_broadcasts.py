"""Broadcasts through the API: validation at the boundary, create, send, pause, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rundfunk.services.actors import Role


@pytest.fixture
async def audience(tenant, phone) -> list[str]:
    addresses = ["4901", "4902", "4903"]
    for address in addresses:
        await phone(tenant.channel_id, address, "START")
    await phone(tenant.channel_id, "4904", "hello")  # wrote, never opted in
    return addresses


async def create(client: httpx.AsyncClient, tenant, role: Role = Role.EDITOR, **fields):
    body = {"channel_id": tenant.channel_id, "text": "News!", **fields}
    return await client.post("/api/v1/broadcasts", json=body, headers=tenant.auth(role))


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"text": ""}, ["body.text", "at least 1"]),
        ({"text": "   "}, ["body.text", "blank"]),
        ({"text": "x" * 4097}, ["body.text: String should have at most 4096 characters"]),
        ({"send_at": "tomorrow"}, ["body.send_at", "tomorrow", "ISO 8601"]),
        ({"send_at": "2026-13-01"}, ["body.send_at", "2026-13-01", "month"]),
        ({"send_at": "2030-12-01T09:00:00"}, ["body.send_at", "time zone"]),
        ({"send_at": 1893456000}, ["body.send_at", "ISO 8601"]),
        ({"send_at": "2001-01-01T00:00:00Z"}, ["send_at", "past"]),
        ({"topic_keys": ["nope"]}, ["unknown topic", "nope"]),
        ({"topic_keys": [""]}, ["body.topic_keys.0"]),
        ({"media_url": "javascript:alert(1)"}, ["body.media_url", "http"]),
        ({"text": "Hi {{ contact.name"}, ["text"]),
        ({"channel_id": "one"}, ["body.channel_id"]),
        ({"extra": 1}, ["body.extra"]),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_refused_with_a_useful_message(
    client: httpx.AsyncClient, tenant, audience, assert_error, fields, fragments
) -> None:
    assert_error(await create(client, tenant, **fields), 422, "invalid", *fragments)


async def test_unknown_channel_is_404(client: httpx.AsyncClient, tenant, assert_error) -> None:
    assert_error(await create(client, tenant, channel_id=4242), 404, "not_found", "channel")


async def test_empty_audience_is_refused(client: httpx.AsyncClient, tenant, assert_error) -> None:
    assert_error(await create(client, tenant), 422, "invalid", "audience is empty")


async def test_empty_topic_audience_is_refused(
    client: httpx.AsyncClient, tenant, audience, assert_error
) -> None:
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    response = await create(client, tenant, topic_keys=["sport"])
    assert_error(response, 422, "invalid", "audience is empty", "topics")


async def test_agent_may_not_create_or_send(
    client: httpx.AsyncClient, tenant, audience, assert_error
) -> None:
    assert_error(await create(client, tenant, role=Role.AGENT), 403, "forbidden", "editor")
    draft = (await create(client, tenant)).json()
    for action in ("send", "pause", "cancel"):
        response = await client.post(
            f"/api/v1/broadcasts/{draft['id']}/{action}", headers=tenant.auth(Role.AGENT)
        )
        assert_error(response, 403, "forbidden")
    shown = await client.get(f"/api/v1/broadcasts/{draft['id']}", headers=tenant.auth(Role.AGENT))
    assert shown.status_code == 200


async def test_create_and_send(client: httpx.AsyncClient, tenant, audience) -> None:
    response = await create(client, tenant, text="Hallo {{ contact.name | default('du', true) }}")
    assert response.status_code == 201, response.text
    draft = response.json()
    assert draft["status"] == "draft"
    assert draft["channel_id"] == tenant.channel_id
    assert draft["stats"] == {
        "total": 0,
        "queued": 0,
        "deferred": 0,
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 0,
        "skipped": 0,
    }

    sent = await client.post(f"/api/v1/broadcasts/{draft['id']}/send", headers=tenant.auth())
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["status"] == "sending"
    assert body["stats"]["total"] == len(audience)
    assert body["stats"]["queued"] == len(audience)
    assert body["started_at"] is not None

    shown = (await client.get(f"/api/v1/broadcasts/{draft['id']}", headers=tenant.auth())).json()
    assert shown["stats"]["total"] == 3
    listed = (await client.get("/api/v1/broadcasts", headers=tenant.auth(Role.AGENT))).json()
    assert [b["id"] for b in listed["items"]] == [draft["id"]]


async def test_topic_broadcast_reaches_only_the_topic(
    client: httpx.AsyncClient, tenant, audience, phone
) -> None:
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    await phone(tenant.channel_id, "4990", "START sport")
    draft = (await create(client, tenant, topic_keys=["Sport"])).json()
    assert draft["topic_keys"] == ["sport"]
    sent = (
        await client.post(f"/api/v1/broadcasts/{draft['id']}/send", headers=tenant.auth())
    ).json()
    assert sent["stats"]["total"] == 1


async def test_scheduled_broadcast(client: httpx.AsyncClient, tenant, audience) -> None:
    when = datetime.now(UTC) + timedelta(days=1)
    local = when.astimezone().isoformat()
    response = await create(client, tenant, send_at=local, media_url="https://example.test/a.jpg")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["media_url"] == "https://example.test/a.jpg"
    parsed = datetime.fromisoformat(body["send_at"].replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    assert abs((parsed - when).total_seconds()) < 1
    zulu = await create(client, tenant, send_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert zulu.status_code == 201, zulu.text


async def test_pause_resume_cancel(
    client: httpx.AsyncClient, tenant, audience, assert_error
) -> None:
    auth = tenant.auth()
    draft = (await create(client, tenant)).json()
    url = f"/api/v1/broadcasts/{draft['id']}"
    assert_error(await client.post(f"{url}/pause", headers=auth), 409, "conflict", "draft")
    await client.post(f"{url}/send", headers=auth)
    paused = await client.post(f"{url}/pause", headers=auth)
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    resumed = (await client.post(f"{url}/send", headers=auth)).json()
    assert resumed["status"] == "sending"
    cancelled = (await client.post(f"{url}/cancel", headers=auth)).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["stats"]["skipped"] == 3
    assert cancelled["stats"]["queued"] == 0
    assert_error(await client.post(f"{url}/cancel", headers=auth), 409, "conflict", "cancelled")
    assert_error(await client.post(f"{url}/send", headers=auth), 409, "conflict")


async def test_unknown_broadcast_is_404(client: httpx.AsyncClient, tenant, assert_error) -> None:
    auth = tenant.auth()
    assert_error(await client.get("/api/v1/broadcasts/777", headers=auth), 404, "not_found")
    for action in ("send", "pause", "cancel"):
        response = await client.post(f"/api/v1/broadcasts/777/{action}", headers=auth)
        assert_error(response, 404, "not_found", "777")
