"""No 500 from any input: text no database can store, and ids beyond what a column holds.

A NUL (U+0000) or a lone surrogate (U+D800..U+DFFF) in any field or parameter is a 422
that names it, on the API, the sandbox's public routes and the console alike
(``web.request_checks``); an id is accepted from 1 to 2^63 - 1 and is found or not
found (404) over that whole range, never a 500. Run on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from rundfunk.db.types import MAX_ID
from rundfunk.web.app import create_app

NUL = "must not contain a NUL character"
SURROGATE = "lone surrogate"


def _raw_json(text: str, auth: dict[str, str] | None = None) -> dict[str, Any]:
    """A JSON body spelled exactly as given (httpx would refuse a lone surrogate)."""
    headers = {"content-type": "application/json", **(auth or {})}
    return {"content": text.encode("ascii"), "headers": headers}


async def test_nul_and_lone_surrogates_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Any, assert_error: Callable[..., str]
) -> None:
    auth = tenant.auth()
    search = await client.get("/api/v1/contacts", params={"search": "a\x00b"}, headers=auth)
    assert_error(search, 422, "invalid", "query.search", NUL)
    topic = await client.post("/api/v1/topics", json={"key": "k", "name": "a\x00"}, headers=auth)
    assert_error(topic, 422, "invalid", "body.name", NUL)
    lone = await client.post(
        "/api/v1/topics", **_raw_json('{"key": "k", "name": "x\\ud800y"}', auth)
    )
    assert_error(lone, 422, "invalid", "body.name", SURROGATE)
    # Nested anywhere, keys too; a surrogate pair (an emoji) is fine.
    nested = await client.patch(
        f"/api/v1/channels/{tenant.channel_id}",
        **_raw_json('{"config": {"keywords": {"opt_in": ["\\ud83d\\ude00", "x\\u0000"]}}}', auth),
    )
    assert_error(nested, 422, "invalid", "body.config.keywords.opt_in.1", NUL)
    key = await client.patch(
        f"/api/v1/channels/{tenant.channel_id}",
        **_raw_json('{"config": {"a\\udc00": 1}}', auth),
    )
    message = assert_error(key, 422, "invalid", "body.config.a\\udc00", "the key", SURROGATE)
    assert "\udc00" not in message
    # Numbers JSON cannot hold (they parse to inf and nan) were 500s from a JSON column.
    for number in ("1e400", "-1e400", "NaN", "Infinity"):
        infinite = await client.patch(
            f"/api/v1/channels/{tenant.channel_id}",
            **_raw_json('{"config": {"note": ' + number + "}}", auth),
        )
        assert_error(infinite, 422, "invalid", "body.config.note", "finite")
    created = await client.post(
        "/api/v1/channels",
        **_raw_json('{"kind": "sandbox", "name": "x", "settings": {"a": [1e999]}}', auth),
    )
    assert_error(created, 422, "invalid", "body.settings.a.0", "finite")
    # As deep as the JSON parser goes, without exhausting the stack.
    deep = await client.patch(
        f"/api/v1/channels/{tenant.channel_id}",
        **_raw_json('{"config": {"d": ' + "[" * 900 + '"\\u0000"' + "]" * 900 + "}}", auth),
    )
    assert_error(deep, 422, "invalid", "body.config.d.0.0.0", NUL)
    # The unauthenticated sandbox phone routes: the person's text and name.
    phone = await client.post(
        f"/sandbox/{tenant.channel_id}/phones/4915100000001/messages",
        **_raw_json('{"text": "START", "name": "Eve\\u0000"}'),
    )
    assert_error(phone, 422, "invalid", "body.name", NUL)
    # Nothing was stored on the way.
    listed = await client.get("/api/v1/topics", headers=auth)
    assert listed.json()["items"] == []


async def test_ids_anywhere_in_the_64_bit_range_never_500(
    client: httpx.AsyncClient, tenant: Any, assert_error: Callable[..., str]
) -> None:
    auth = tenant.auth()
    for big in (2**31 - 1, 2**31, 2**32 + 5, MAX_ID):
        for path in (
            f"/api/v1/contacts/{big}",
            f"/api/v1/broadcasts/{big}",
            f"/api/v1/channels/{big}",
            f"/api/v1/conversations/{big}/messages",
        ):
            assert_error(await client.get(path, headers=auth), 404, "not_found")
        assert_error(
            await client.post(
                "/api/v1/broadcasts", json={"channel_id": big, "text": "hi"}, headers=auth
            ),
            404,
            "not_found",
        )
        assert_error(await client.get(f"/webhooks/whatsapp/{big}"), 404, "not_found")
        assert_error(
            await client.get(f"/sandbox/{big}/phones/4915100000001/messages"), 404, "not_found"
        )
        page = await client.get("/api/v1/audit", params={"after_id": big}, headers=auth)
        assert page.status_code == 200 and page.json()["items"] == []
    for beyond in (MAX_ID + 1, 2**64, 0, -1):
        assert_error(await client.get(f"/api/v1/contacts/{beyond}", headers=auth), 422, "invalid")
        assert_error(await client.get(f"/webhooks/whatsapp/{beyond}"), 422, "invalid")
    too_far = await client.get("/api/v1/audit", params={"after_id": MAX_ID + 1}, headers=auth)
    assert_error(too_far, 422, "invalid", "query.after_id")
    limit = await client.get("/api/v1/contacts", params={"limit": 10**6}, headers=auth)
    assert_error(limit, 422, "invalid", "query.limit")



class Note(BaseModel):
    text: str
    tags: dict[str, list[str]] = {}


async def test_a_route_added_later_is_checked_too(settings: Any, runtime: Any) -> None:
    """The check belongs to the app, not to a route: a new router gets it by itself."""
    router = APIRouter(prefix="/api/v1/later")
    stored: list[Note] = []

    @router.post("/{name}")
    async def add(name: str, note: Note, q: str = "") -> dict[str, int]:
        stored.append(note)
        return {"stored": len(stored)}

    app = create_app(settings, runtime=runtime)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        ok = await http.post("/api/v1/later/a", json={"text": "fine", "tags": {"x": ["y"]}})
        assert ok.status_code == 200, ok.text
        for url, body, field in (
            ("/api/v1/later/a", '{"text": "a\\u0000"}', "body.text"),
            ("/api/v1/later/a", '{"text": "a", "tags": {"x": ["\\udfff"]}}', "body.tags.x.0"),
            ("/api/v1/later/a?q=%00", '{"text": "a"}', "query.q"),
            ("/api/v1/later/a%00b", '{"text": "a"}', "path.name"),
        ):
            refused = await http.post(url, **_raw_json(body))
            assert refused.status_code == 422, (url, refused.text)
            assert field in refused.json()["error"]["message"], refused.text
    assert len(stored) == 1
