"""The fake Graph API's wire behaviour, seen from a plain aiohttp client and receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rundfunk.testing.fake_graph import FakeGraph

TOKEN = "tok"
SECRET = "secret"
ANNA = "4915100000001"
BERT = "4915100000002"


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(
        access_token=TOKEN, app_secret=SECRET, phone_number_id="1001", waba_id="2002", seed=1
    )
    await fake.start()
    fake.add_template("news", body="Hallo {{1}}, es gibt Neues zu {{2}}.")
    yield fake
    await fake.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Receiver:
    """A webhook endpoint: records raw bodies and headers, answers from a script."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    posts: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((await request.read(), dict(request.headers)))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.posts]

    def statuses(self) -> list[dict[str, Any]]:
        return [
            status
            for envelope in self.envelopes()
            for entry in envelope["entry"]
            for change in entry["changes"]
            for status in change["value"].get("statuses", [])
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


def signature_ok(body: bytes, headers: dict[str, str], secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Hub-Signature-256", ""), expected)


async def send(
    http: aiohttp.ClientSession, graph: FakeGraph, payload: dict[str, Any], token: str = TOKEN
) -> tuple[int, dict[str, Any]]:
    url = f"{graph.base_url}/v21.0/1001/messages"
    headers = {"Authorization": f"Bearer {token}"}
    body = {"messaging_product": "whatsapp", **payload}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


def text(to: str, body: str = "Hallo", **extra: Any) -> dict[str, Any]:
    return {"to": to, "type": "text", "text": {"body": body}, **extra}


def template(to: str, name: str = "news", params: list[str] | None = None) -> dict[str, Any]:
    values = ["Anna", "Kultur"] if params is None else params
    return {
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": "de"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}
            ],
        },
    }


def buttons(n: int) -> dict[str, Any]:
    reply = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"Knopf {i}"}} for i in range(n)]
    return {"type": "button", "body": {"text": "Welches Thema?"}, "action": {"buttons": reply}}


def assert_graph_error(status: int, body: dict[str, Any], code: int) -> None:
    assert status == 400
    error = body["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code}) ")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]


async def test_text_send_answers_the_documented_success_shape(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.open_window(ANNA)
    status, body = await send(http, graph, text("+" + ANNA, biz_opaque_callback_data="d-1"))
    assert status == 200
    wamid = body["messages"][0]["id"]
    assert body == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+" + ANNA, "wa_id": ANNA}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }
    assert wamid.startswith("wamid.")
    [sent] = graph.received(ANNA)
    assert (sent.wamid, sent.to, sent.callback_data) == (wamid, ANNA, "d-1")
    assert graph.count_by_recipient() == {ANNA: 1}
    assert graph.requests["messages"] == 1


async def test_bad_token_is_error_190_with_http_401(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    status, body = await send(http, graph, template(ANNA), token="wrong")
    assert status == 401
    assert body["error"]["code"] == 190
    assert body["error"]["type"] == "OAuthException"
    assert graph.sent == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (text(ANNA, "x" * 4097), 100),
        ({"to": ANNA, "type": "interactive", "interactive": buttons(4)}, 100),
        (template(ANNA, params=["Anna"]), 132000),
        (template(ANNA, name="paused"), 132015),
        (template(ANNA, name="nope"), 132001),
    ],
    ids=["body-too-long", "four-buttons", "param-count", "paused", "unknown-template"],
)
async def test_invalid_sends_answer_the_documented_error_shape(
    graph: FakeGraph, http: aiohttp.ClientSession, payload: dict[str, Any], code: int
) -> None:
    graph.add_template("paused", status="PAUSED", body="Hallo {{1}}, es gibt Neues zu {{2}}.")
    graph.open_window(ANNA)
    status, body = await send(http, graph, payload)
    assert_graph_error(status, body, code)
    assert graph.sent == []


async def test_three_buttons_and_a_list_are_accepted(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.open_window(ANNA)
    listing = {
        "type": "list",
        "body": {"text": "Themen"},
        "action": {
            "button": "Auswählen",
            "sections": [
                {"title": "Kultur", "rows": [{"id": "k", "title": "Kultur", "description": "…"}]},
                {"title": "Sport", "rows": [{"id": "s", "title": "Sport"}]},
            ],
        },
    }
    for interactive in (buttons(3), listing):
        status, _ = await send(
            http, graph, {"to": ANNA, "type": "interactive", **{"interactive": interactive}}
        )
        assert status == 200
    assert len(graph.sent) == 2


async def test_outside_the_window_free_text_is_131047_and_a_template_goes(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    status, body = await send(http, graph, text(ANNA))
    assert_graph_error(status, body, 131047)
    status, _ = await send(http, graph, template(ANNA))
    assert status == 200
    await graph.user_writes(ANNA, "Hallo")  # no webhook_url: only opens the window
    status, _ = await send(http, graph, text(ANNA))
    assert status == 200
    assert [m.type for m in graph.sent] == ["template", "text"]


async def test_injected_error_at_share_one_answers_that_code(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.inject(131048, 1.0)
    status, body = await send(http, graph, template(ANNA))
    assert_graph_error(status, body, 131048)
    graph.clear_injections()
    graph.inject(130429, 1.0, http_status=429)
    status, body = await send(http, graph, template(ANNA))
    assert (status, body["error"]["code"]) == (429, 130429)
    graph.clear_injections()
    status, _ = await send(http, graph, template(ANNA))
    assert status == 200
    assert len(graph.sent) == 1


async def test_network_error_drops_the_connection(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.network_error_share = 1.0
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await send(http, graph, template(ANNA))
    assert graph.sent == []
    graph.network_error_accepts = True  # arrived, but the answer is lost
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await send(http, graph, template(ANNA))
    assert len(graph.sent) == 1


async def test_throughput_limit_answers_130429_beyond_the_rate(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.throughput_limit = 2.0  # a burst of 2, then one every 0.5 s
    results = await asyncio.gather(*(send(http, graph, template(ANNA)) for _ in range(12)))
    codes = sorted(body.get("error", {}).get("code", 0) for _, body in results)
    assert codes == [0] * 2 + [130429] * 10
    assert len(graph.sent) == 2
    await asyncio.sleep(0.55)
    status, _ = await send(http, graph, template(ANNA))
    assert status == 200


async def test_pair_limit_answers_131056(graph: FakeGraph, http: aiohttp.ClientSession) -> None:
    graph.pair_limit_seconds = 6.0
    assert (await send(http, graph, template(ANNA)))[0] == 200
    status, body = await send(http, graph, template(ANNA))
    assert_graph_error(status, body, 131056)
    assert (await send(http, graph, template(BERT)))[0] == 200


async def test_templates_are_paged_25_at_a_time(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    graph.templates.clear()
    for i in range(60):
        graph.add_template(f"t{i:02d}", category="UTILITY")
    url: str | None = f"{graph.base_url}/v21.0/2002/message_templates?limit=25&fields=name,status"
    pages: list[list[dict[str, Any]]] = []
    while url is not None:
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200
            body = await response.json()
        pages.append(body["data"])
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        url = body["paging"].get("next")
    assert [len(p) for p in pages] == [25, 25, 10]
    names = [t["name"] for page in pages for t in page]
    assert names == [f"t{i:02d}" for i in range(60)]
    assert all(set(t) == {"name", "status", "id"} for page in pages for t in page)


async def test_status_webhooks_are_signed_and_carry_callback_data(
    graph: FakeGraph, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    graph.webhook_url = receiver.url
    graph.read_share = 1.0
    graph.undeliverable = {BERT}
    for to in (ANNA, BERT):
        status, _ = await send(
            http, graph, {**template(to), "biz_opaque_callback_data": f"delivery-{to}"}
        )
        assert status == 200
    await graph.drain(timeout=5)

    assert receiver.posts
    for body, headers in receiver.posts:
        assert headers["Content-Type"] == "application/json"
        assert signature_ok(body, headers)
    for envelope in receiver.envelopes():
        assert envelope["object"] == "whatsapp_business_account"
        for entry in envelope["entry"]:
            assert entry["id"] == "2002"
            for change in entry["changes"]:
                assert change["field"] == "messages"
                assert change["value"]["metadata"]["phone_number_id"] == "1001"

    by_user: dict[str, list[dict[str, Any]]] = {}
    for status_obj in receiver.statuses():
        by_user.setdefault(status_obj["recipient_id"], []).append(status_obj)
    # Separate POSTs may overtake each other, as Meta's do: compare as a set.
    assert sorted(s["status"] for s in by_user[ANNA]) == ["delivered", "read", "sent"]
    assert all(s["biz_opaque_callback_data"] == f"delivery-{ANNA}" for s in by_user[ANNA])
    [sent] = [s for s in by_user[ANNA] if s["status"] == "sent"]
    assert sent["pricing"]["category"] == "marketing"
    assert sent["conversation"]["origin"]["type"] == "marketing"
    assert all(s["timestamp"].isdigit() for s in by_user[ANNA])
    [failed] = by_user[BERT]
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == 131026
    assert failed["biz_opaque_callback_data"] == f"delivery-{BERT}"
    assert {s["id"] for s in by_user[ANNA]} == {graph.received(ANNA)[0].wamid}


async def test_webhook_answered_500_is_retried_until_200(
    graph: FakeGraph, receiver: Receiver
) -> None:
    graph.webhook_url = receiver.url
    receiver.answers = [500, 500, 200]
    message_id = await graph.user_writes(ANNA, "START", name="Anna")
    assert len(receiver.posts) == 3
    assert len({body for body, _ in receiver.posts}) == 1
    assert list(graph.webhook_responses) == [500, 500, 200]
    assert (graph.webhook_posts, graph.webhook_failures) == (3, 2)
    value = receiver.envelopes()[0]["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Anna"}, "wa_id": ANNA}]
    [message] = value["messages"]
    assert message["id"] == message_id
    assert (message["from"], message["type"], message["text"]) == (ANNA, "text", {"body": "START"})
    assert graph.in_window(ANNA)


async def test_user_preferences_template_updates_and_unsigned_posts(
    graph: FakeGraph, receiver: Receiver
) -> None:
    graph.webhook_url = receiver.url
    await graph.user_preferences(ANNA, "stop")
    graph.set_template_status("news", "de", "PAUSED", reason="LOW_QUALITY")
    await graph.drain(timeout=5)
    prefs, update = receiver.envelopes()
    change = prefs["entry"][0]["changes"][0]
    assert change["field"] == "user_preferences"
    assert change["value"]["user_preferences"][0]["value"] == "stop"
    assert change["value"]["user_preferences"][0]["category"] == "marketing_messages"
    change = update["entry"][0]["changes"][0]
    assert change["field"] == "message_template_status_update"
    assert change["value"]["event"] == "PAUSED"
    assert change["value"]["message_template_name"] == "news"
    assert all(signature_ok(body, headers) for body, headers in receiver.posts)

    assert await graph.post_webhook(prefs, secret="wrong") == 200
    assert not signature_ok(*receiver.posts[-1])
    await graph.post_webhook(prefs, sign=False)
    assert "X-Hub-Signature-256" not in receiver.posts[-1][1]


async def test_media_upload_limits_and_use_by_id(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def upload(mime: str, size: int) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", b"x" * size, filename="f", content_type=mime)
        url = f"{graph.base_url}/v21.0/1001/media"
        async with http.post(url, data=form, headers=headers) as response:
            return response.status, await response.json()

    status, body = await upload("image/webp", 600 * 1024)
    assert_graph_error(status, body, 131053)
    status, body = await upload("image/png", 1000)
    assert status == 200
    media_id = body["id"]
    assert graph.media[media_id] == b"x" * 1000
    async with http.get(f"{graph.base_url}/v21.0/{media_id}", headers=headers) as response:
        info = await response.json()
    assert (info["id"], info["file_size"], info["mime_type"]) == (media_id, 1000, "image/png")

    graph.enforce_window = False
    ok = {"to": ANNA, "type": "image", "image": {"id": media_id, "caption": "Bild"}}
    assert (await send(http, graph, ok))[0] == 200
    both = {"to": ANNA, "type": "image", "image": {"id": media_id, "link": "https://x.org/a"}}
    assert_graph_error(*(await send(http, graph, both)), 100)
    unknown = {"to": ANNA, "type": "document", "document": {"id": "404"}}
    assert_graph_error(*(await send(http, graph, unknown)), 100)


async def test_business_profile_and_phone_number(
    graph: FakeGraph, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{graph.base_url}/v21.0/1001/whatsapp_business_profile"
    update = {
        "messaging_product": "whatsapp",
        "about": "Nachrichten aus dem Viertel",
        "websites": ["https://example.org/impressum"],
        "vertical": "NONPROFIT",
    }
    async with http.post(url, json=update, headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"success": True})
    bad = {"messaging_product": "whatsapp", "about": "x" * 140}
    async with http.post(url, json=bad, headers=headers) as response:
        assert_graph_error(response.status, await response.json(), 100)
    async with http.get(url, params={"fields": "about,websites"}, headers=headers) as response:
        [profile] = (await response.json())["data"]
    assert profile == {
        "about": "Nachrichten aus dem Viertel",
        "websites": ["https://example.org/impressum"],
        "messaging_product": "whatsapp",
    }
    async with http.get(f"{graph.base_url}/v22.0/1001", headers=headers) as response:
        node = await response.json()
    assert node["id"] == "1001"
    assert node["quality_rating"] == "GREEN"
    assert graph.requests["phone_number"] == 1


async def test_cli_mode_serves_and_reports_sends(http: aiohttp.ClientSession) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "rundfunk.testing.fake_graph", "--port", "0"]
    command += ["--access-token", TOKEN, "--app-secret", SECRET]
    command += ["--phone-number-id", "1001", "--waba-id", "2002"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=10)
        assert line.startswith("FAKE_GRAPH_URL=http://127.0.0.1:")
        base = line.strip().split("=", 1)[1]
        async with http.post(f"{base}/_fake/users/{ANNA}/messages", json={"text": "START"}):
            pass
        async with http.post(f"{base}/_fake/config", json={"read_share": 1.0}) as response:
            assert (await response.json())["read_share"] == 1.0
        async with http.post(
            f"{base}/v21.0/1001/messages",
            json={"messaging_product": "whatsapp", **text(ANNA)},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert response.status == 200
            wamid = (await response.json())["messages"][0]["id"]
        async with http.get(f"{base}/_fake/sent") as response:
            [row] = await response.json()
        assert (row["wamid"], row["to"], row["type"]) == (wamid, ANNA, "text")
        async with http.get(f"{base}/_fake/stats") as response:
            stats = await response.json()
        assert (stats["sent"], stats["recipients"], stats["requests"]["messages"]) == (1, 1, 1)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
