"""WhatsApp over the HTTP API: the in-process app against a fake Graph API on loopback.

Rundfunk runs for real (SQLite file, the app over httpx's ASGI transport with its
lifespan, the dispatcher where a test needs sends); only the platform is a stand-in
(``rundfunk.testing.fake_graph``). The fake posts no webhooks here: each test posts
the platform's webhooks to the app itself, signed with the app secret, so that it
decides exactly what arrives and when. A webhook is stored before its 200 and applied
afterwards; ``WhatsApp.post`` waits for the app's applier (``drain``) so each test
sees what the webhook did, and ``deliver`` returns what it did.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from rundfunk.channels.whatsapp.webhook import sign
from rundfunk.config import Settings
from rundfunk.db.tables import deliveries, messages
from rundfunk.services.actors import Role
from rundfunk.services.webhooks import IngestResult
from rundfunk.testing.fake_graph import ERROR_TITLES, FakeGraph, SentMessage
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.webhook_ingest import WebhookIngestion

ACCESS_TOKEN = "EAAG-web-test-token-7f3a"
APP_SECRET = "app-secret-web-test-91c2"
PHONE_NUMBER_ID = "1001"
WABA_ID = "2002"
TEMPLATE = "news_update"
NEWS = {"name": TEMPLATE, "language": "de", "body_parameters": ["{{ contact.name }}", "Stadtrat"]}
HOUR = 3600

T = TypeVar("T")
_ids = itertools.count(1)


# --- the platform's side: webhooks as Meta sends them ---------------------------------


def _wamid() -> str:
    return f"wamid.web-test-{next(_ids):06d}"


def envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    change = {"field": field, "value": value}
    entry = {"id": WABA_ID, "time": int(time.time()), "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def _value(**items: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "4915123456789", "phone_number_id": PHONE_NUMBER_ID}
    return {"messaging_product": "whatsapp", "metadata": metadata, **items}


def inbound(
    address: str,
    kind: str,
    content: Any,
    *,
    message_id: str | None = None,
    at: float | None = None,
    name: str = "Anna",
) -> dict[str, Any]:
    message = {
        "from": address,
        "id": message_id or _wamid(),
        "timestamp": str(int(time.time() if at is None else at)),
        "type": kind,
        kind: content,
    }
    contacts = [{"profile": {"name": name}, "wa_id": address}]
    return envelope("messages", _value(contacts=contacts, messages=[message]))


def status(message: SentMessage, state: str, *, at: int, code: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": message.wamid,
        "status": state,
        "timestamp": str(at),
        "recipient_id": message.to,
        "biz_opaque_callback_data": message.callback_data,
    }
    if code is not None:
        title = ERROR_TITLES[code]
        item["errors"] = [
            {"code": code, "title": title, "message": title, "error_data": {"details": title}}
        ]
    return item


def statuses(*items: dict[str, Any]) -> dict[str, Any]:
    return envelope("messages", _value(statuses=list(items)))


def preference(address: str, value: str) -> dict[str, Any]:
    item = {
        "wa_id": address,
        "detail": f"User requested to {value} marketing messages",
        "category": "marketing_messages",
        "value": value,
        "timestamp": int(time.time()),
    }
    contacts = [{"profile": {"name": "Anna"}, "wa_id": address}]
    return envelope("user_preferences", _value(contacts=contacts, user_preferences=[item]))


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, graph: FakeGraph) -> Settings:
    """The operator points every WhatsApp channel at the fake Graph server."""
    return settings.model_copy(update={"whatsapp_api_base_url": graph.base_url})


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running: webhook ingestion starts and stops with it."""
    made = create_app(settings, runtime=runtime)
    async with made.router.lifespan_context(made):
        yield made


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        phone_number_id=PHONE_NUMBER_ID,
        waba_id=WABA_ID,
        seed=11,
    )
    await fake.start()
    fake.add_template(TEMPLATE, "de", body="Hallo {{1}}, heute: {{2}}")
    try:
        yield fake
    finally:
        await fake.close()


def wa_config(graph: FakeGraph, **extra: Any) -> dict[str, Any]:
    return {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "throughput": 1000,
        "pair_interval_seconds": 0,
        **extra,
    }


@dataclass
class WhatsApp:
    """A workspace with a WhatsApp channel pointed at the fake."""

    client: httpx.AsyncClient
    graph: FakeGraph
    tenant: Any
    channel: dict[str, Any]
    ingestion: WebhookIngestion
    applied: IngestResult = field(default_factory=IngestResult)  # by the last ``post``

    @property
    def id(self) -> int:
        return int(self.channel["id"])

    @property
    def owner(self) -> dict[str, str]:
        return dict(self.tenant.auth())

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/channels/{self.id}{suffix}"

    async def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        secret: str | None = APP_SECRET,
        channel_id: int | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = sign(secret, raw)
        before = _counts(self.ingestion.applier.totals)
        response = await self.client.post(
            f"/webhooks/whatsapp/{channel_id or self.id}", content=raw, headers=headers
        )
        await self.ingestion.drain()  # the stored webhook is applied (if the loop has not)
        after = _counts(self.ingestion.applier.totals)
        self.applied = IngestResult(**{k: after[k] - before[k] for k in after})
        return response

    async def deliver(self, body: dict[str, Any], **kwargs: Any) -> IngestResult:
        """Post a webhook that must be accepted; what applying it did."""
        response = await self.post(body, **kwargs)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True}
        return self.applied

    async def writes(
        self, address: str, text: str, *, at: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The person writes ``text``; the platform opens their window and webhooks it."""
        when = time.time() if at is None else at
        self.graph.open_window(address, at=when)
        response = await self.post(inbound(address, "text", {"body": text}, at=when, **kwargs))
        assert response.status_code == 200, response.text
        return response

    async def contact(self, address: str) -> dict[str, Any]:
        listed = await self.client.get(
            "/api/v1/contacts", params={"channel_id": self.id}, headers=self.owner
        )
        [found] = [c for c in listed.json()["items"] if c["address"] == address]
        detail = await self.client.get(f"/api/v1/contacts/{found['id']}", headers=self.owner)
        assert detail.status_code == 200, detail.text
        body: dict[str, Any] = detail.json()
        return body

    async def sync(self) -> dict[str, Any]:
        response = await self.client.post(self.url("/templates/sync"), headers=self.owner)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def conversation_of(self, address: str) -> dict[str, Any]:
        listed = (await self.client.get("/api/v1/conversations", headers=self.owner)).json()
        [found] = [c for c in listed["items"] if c["contact_address"] == address]
        return dict(found)


def _counts(result: IngestResult) -> dict[str, int]:
    return {f.name: getattr(result, f.name) for f in fields(result) if f.name != "effects"}


@pytest.fixture
async def wa(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any, graph: FakeGraph
) -> WhatsApp:
    tenant = await make_tenant("newsroom")
    created = await client.post(
        "/api/v1/channels",
        json={"kind": "whatsapp", "name": "Newsroom", "config": wa_config(graph)},
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    return WhatsApp(client, graph, tenant, created.json(), app.state.ingestion)


@pytest.fixture
async def worker(runtime: Runtime) -> Runtime:
    """The dispatcher and scheduler, running until the runtime closes."""
    await runtime.start_worker()
    return runtime


# --- 1. connecting a number -------------------------------------------------------------


async def test_create_hides_secrets_and_shows_webhook_setup(
    client: httpx.AsyncClient, wa: WhatsApp, graph: FakeGraph
) -> None:
    channel = wa.channel
    assert channel["kind"] == "whatsapp" and channel["status"] == "active"
    assert channel["webhook_url"].endswith(f"/webhooks/whatsapp/{wa.id}")
    assert isinstance(channel["verify_token"], str) and len(channel["verify_token"]) >= 16
    assert channel["config"] == {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "api_version": "v23.0",
        "throughput": 1000.0,
        "pair_interval_seconds": 0.0,
        "pair_burst": 3,
    }
    # Admins see the verify token again; an agent sees the channel but not the token.
    admin = await client.get(wa.url(), headers=wa.tenant.auth(Role.ADMIN))
    assert admin.json()["verify_token"] == channel["verify_token"]
    agent = await client.get(wa.url(), headers=wa.tenant.auth(Role.AGENT))
    assert agent.status_code == 200
    assert agent.json()["verify_token"] is None
    assert agent.json()["config"] == channel["config"]
    listed = await client.get("/api/v1/channels", headers=wa.tenant.auth(Role.AGENT))
    assert [c["verify_token"] for c in listed.json()["items"]] == [None, None]
    for response in (admin, agent, listed):
        assert ACCESS_TOKEN not in response.text and APP_SECRET not in response.text

    # A second channel with the same secrets: the creation answer never echoes them,
    # and a given verify token is kept.
    again = await client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "Second",
            "config": wa_config(graph, verify_token="my-own-verify-token"),
        },
        headers=wa.owner,
    )
    assert again.status_code == 201, again.text
    assert ACCESS_TOKEN not in again.text and APP_SECRET not in again.text
    assert again.json()["verify_token"] == "my-own-verify-token"


async def test_create_refuses_bad_config(
    client: httpx.AsyncClient, tenant: Any, graph: FakeGraph, assert_error: Any
) -> None:
    async def create(config: dict[str, Any], **extra: Any) -> httpx.Response:
        body = {"kind": "whatsapp", "name": "WA", "config": config, **extra}
        return await client.post("/api/v1/channels", json=body, headers=tenant.auth())

    missing = wa_config(graph)
    del missing["phone_number_id"]
    assert_error(await create(missing), 422, "invalid", "config.phone_number_id")
    assert_error(
        await create(wa_config(graph, throughput=1001)), 422, "invalid", "config.throughput"
    )
    assert_error(
        await create(wa_config(graph), credentials={"token": "x"}),
        422,
        "invalid",
        "access token and app secret in config",
    )
    # Nothing was created: only the tenant's sandbox channel exists.
    listed = await client.get("/api/v1/channels", headers=tenant.auth())
    assert [c["kind"] for c in listed.json()["items"]] == ["sandbox"]


# --- 2. Meta's verification handshake ---------------------------------------------------


async def test_handshake_echoes_the_challenge_for_the_right_token(
    client: httpx.AsyncClient, wa: WhatsApp, tenant: Any, assert_error: Any
) -> None:
    hook = f"/webhooks/whatsapp/{wa.id}"
    token = wa.channel["verify_token"]
    params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    ok = await client.get(hook, params=params)
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")

    wrong_token = {**params, "hub.verify_token": token + "x"}
    assert_error(await client.get(hook, params=wrong_token), 403, "forbidden", "verify_token")
    wrong_mode = {**params, "hub.mode": "unsubscribe"}
    assert_error(await client.get(hook, params=wrong_mode), 403, "forbidden", "hub.mode")
    assert_error(await client.get("/webhooks/whatsapp/99999", params=params), 404, "not_found")
    sandbox = f"/webhooks/whatsapp/{tenant.channel_id}"
    assert_error(await client.get(sandbox, params=params), 404, "not_found")


# --- 3. webhook POSTs -------------------------------------------------------------------


async def _stored_messages(runtime: Runtime) -> int:
    async with runtime.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(messages)) or 0)


async def test_unsigned_or_forged_webhooks_store_nothing(
    client: httpx.AsyncClient, wa: WhatsApp, runtime: Runtime, tenant: Any, assert_error: Any
) -> None:
    start = inbound("4917000000001", "text", {"body": "START"})
    assert_error(await wa.post(start, secret=None), 401, "bad_signature", "missing")
    assert_error(await wa.post(start, secret="not-the-app-secret"), 401, "bad_signature")
    # Signed, but the body was changed afterwards.
    raw = json.dumps(start).encode()
    tampered = await client.post(
        f"/webhooks/whatsapp/{wa.id}",
        content=raw.replace(b"START", b"STOP!"),
        headers={"X-Hub-Signature-256": sign(APP_SECRET, raw)},
    )
    assert_error(tampered, 401, "bad_signature", "does not match")
    listed = await client.get("/api/v1/contacts", headers=wa.owner)
    assert listed.json()["items"] == []
    assert await _stored_messages(runtime) == 0
    # Webhooks go to WhatsApp channels only.
    assert_error(await wa.post(start, channel_id=tenant.channel_id), 404, "not_found")


async def test_malformed_webhook_is_400(wa: WhatsApp, runtime: Runtime, assert_error: Any) -> None:
    assert_error(await wa.post(b'{"object": "whatsapp_business_account", '), 400, "bad_webhook")
    assert_error(await wa.post({"object": "page", "entry": []}), 400, "bad_webhook")
    assert_error(await wa.post({"object": "whatsapp_business_account"}), 400, "bad_webhook")
    assert await _stored_messages(runtime) == 0


async def test_signed_start_subscribes_with_a_consent_event(wa: WhatsApp) -> None:
    response = await wa.writes("4917000000001", "START", name="Ada")
    assert response.json() == {"ok": True}
    assert (wa.applied.webhooks, wa.applied.messages, wa.applied.duplicates) == (1, 1, 0)
    contact = await wa.contact("4917000000001")
    assert contact["status"] == "subscribed"
    assert contact["name"] == "Ada"
    assert [(e["kind"], e["source"], e["keyword"]) for e in contact["consent_history"]] == [
        ("opt_in", "keyword", "START")
    ]


async def test_a_repeated_message_id_is_stored_once(wa: WhatsApp, runtime: Runtime) -> None:
    body = inbound("4917000000001", "text", {"body": "START"}, message_id="wamid.same-1")
    first = await wa.deliver(body)
    again = await wa.deliver(body)
    assert (first.messages, first.duplicates, again.messages, again.duplicates) == (1, 0, 1, 1)
    async with runtime.db.read() as conn:
        stored = await conn.scalar(
            select(func.count())
            .select_from(messages)
            .where(messages.c.provider_message_id == "wamid.same-1")
        )
    assert stored == 1
    contact = await wa.contact("4917000000001")
    assert len(contact["consent_history"]) == 1


async def test_image_with_caption_lands_in_a_conversation(
    client: httpx.AsyncClient, wa: WhatsApp, runtime: Runtime
) -> None:
    image = {
        "id": "1479537139650973",
        "mime_type": "image/jpeg",
        "sha256": "abc",
        "caption": "Hier",
    }
    response = await wa.post(inbound("4917000000002", "image", image, message_id="wamid.img-1"))
    assert response.status_code == 200, response.text
    conversation = await wa.conversation_of("4917000000002")
    listed = await client.get(
        f"/api/v1/conversations/{conversation['id']}/messages", headers=wa.owner
    )
    assert [(m["direction"], m["kind"], m["text"]) for m in listed.json()["items"]] == [
        ("in", "image", "Hier")
    ]
    async with runtime.db.read() as conn:
        payload = await conn.scalar(
            select(messages.c.payload).where(messages.c.provider_message_id == "wamid.img-1")
        )
    assert payload["media_id"] == "1479537139650973"
    assert payload["mime_type"] == "image/jpeg"


async def test_list_reply_start_topic_subscribes_to_the_topic(
    client: httpx.AsyncClient, wa: WhatsApp
) -> None:
    topic = await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=wa.owner
    )
    assert topic.status_code == 201, topic.text
    tap = {"type": "list_reply", "list_reply": {"id": "START sport", "title": "Sport"}}
    response = await wa.post(inbound("4917000000003", "interactive", tap))
    assert response.status_code == 200, response.text
    contact = await wa.contact("4917000000003")
    assert contact["status"] == "subscribed"
    assert [s["key"] for s in contact["subscriptions"]] == ["sport"]
    assert [(e["kind"], e["topic_key"], e["source"]) for e in contact["consent_history"]] == [
        ("opt_in", "sport", "keyword")
    ]


async def test_app_stop_unsubscribes_and_resume_subscribes_again(wa: WhatsApp) -> None:
    address = "4917000000004"
    await wa.writes(address, "START")
    stopped = await wa.post(preference(address, "stop"))
    assert stopped.status_code == 200, stopped.text
    contact = await wa.contact(address)
    assert contact["status"] == "unsubscribed"
    assert [(e["kind"], e["source"]) for e in contact["consent_history"]] == [
        ("opt_in", "keyword"),
        ("opt_out", "platform"),
    ]
    resumed = await wa.post(preference(address, "resume"))
    assert resumed.status_code == 200, resumed.text
    contact = await wa.contact(address)
    assert contact["status"] == "subscribed"
    assert [(e["kind"], e["source"]) for e in contact["consent_history"]][2:] == [
        ("opt_in", "platform")
    ]


async def test_app_resume_does_not_undo_a_typed_stop(wa: WhatsApp) -> None:
    address = "4917000000005"
    await wa.writes(address, "START")
    await wa.writes(address, "STOP")
    for value in ("resume", "stop", "resume"):  # whatever the app reports afterwards
        assert (await wa.post(preference(address, value))).status_code == 200
        contact = await wa.contact(address)
        assert contact["status"] == "unsubscribed", value
    assert [(e["kind"], e["source"]) for e in contact["consent_history"]] == [
        ("opt_in", "keyword"),
        ("opt_out", "keyword"),
    ]


async def test_app_stop_and_resume_never_subscribe_someone_who_never_opted_in(
    wa: WhatsApp,
) -> None:
    address = "4917000000006"
    await wa.writes(address, "Eine Frage")
    for value in ("stop", "resume"):
        assert (await wa.post(preference(address, value))).status_code == 200
    contact = await wa.contact(address)
    assert contact["status"] == "none"
    assert contact["consent_history"] == []


async def test_template_status_webhook_pauses_the_template(
    client: httpx.AsyncClient, wa: WhatsApp
) -> None:
    await wa.sync()
    update = {
        "event": "PAUSED",
        "message_template_id": 1234567,
        "message_template_name": TEMPLATE,
        "message_template_language": "de",
        "reason": "NONE",
        "other_info": {"title": "FIRST_PAUSE", "description": "low quality"},
    }
    response = await wa.post(envelope("message_template_status_update", update))
    assert response.status_code == 200, response.text
    listed = await client.get(wa.url("/templates"), headers=wa.tenant.auth(Role.AGENT))
    assert [(t["name"], t["status"]) for t in listed.json()["items"]] == [(TEMPLATE, "PAUSED")]


# --- 3b. status webhooks for real deliveries --------------------------------------------

PEOPLE = {"4917100000001": "Ada", "4917100000002": "Bo", "4917100000003": "Cem"}


@dataclass
class Sent:
    broadcast_id: int
    messages: dict[str, SentMessage]  # by address
    delivery_ids: dict[str, int]  # by address


@pytest.fixture
async def sent(wa: WhatsApp, worker: Runtime, graph: FakeGraph) -> Sent:
    """Three subscribers got a template broadcast: deliveries with wamids, all 'sent'."""
    for address, name in PEOPLE.items():
        await wa.writes(address, "START", name=name)
    await wa.sync()
    created = await wa.client.post(
        "/api/v1/broadcasts", json={"channel_id": wa.id, "template": NEWS}, headers=wa.owner
    )
    assert created.status_code == 201, created.text
    broadcast_id = int(created.json()["id"])
    started = await wa.client.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=wa.owner)
    assert started.status_code == 200, started.text

    async def done() -> dict[str, Any] | None:
        got = await wa.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=wa.owner)
        body: dict[str, Any] = got.json()
        return body if body["status"] == "done" else None

    finished = await wait_for(done, "the broadcast to finish")
    assert finished["stats"]["sent"] == len(PEOPLE)
    templates = [m for m in graph.sent if m.type == "template"]
    by_address = {m.to: m for m in templates}
    assert len(templates) == len(by_address) == len(PEOPLE)
    listed = await wa.client.get(f"/api/v1/broadcasts/{broadcast_id}/deliveries", headers=wa.owner)
    rows = {d["address"]: d for d in listed.json()["items"]}
    for address, message in by_address.items():
        assert message.callback_data == f"d:{rows[address]['id']}"
        assert rows[address]["provider_message_id"] == message.wamid
    return Sent(broadcast_id, by_address, {a: int(d["id"]) for a, d in rows.items()})


async def _deliveries(wa: WhatsApp, sent: Sent) -> dict[str, dict[str, Any]]:
    listed = await wa.client.get(
        f"/api/v1/broadcasts/{sent.broadcast_id}/deliveries", headers=wa.owner
    )
    assert listed.status_code == 200, listed.text
    return {d["address"]: d for d in listed.json()["items"]}


async def test_failed_131050_fails_the_delivery_and_unsubscribes(wa: WhatsApp, sent: Sent) -> None:
    address = "4917100000001"
    message = sent.messages[address]
    report = statuses(status(message, "failed", at=int(time.time()), code=131050))
    assert (await wa.deliver(report)).statuses_changed == 1
    rows = await _deliveries(wa, sent)
    assert rows[address]["status"] == "failed"
    assert rows[address]["error_code"] == "131050"
    assert {rows[a]["status"] for a in PEOPLE if a != address} == {"sent"}
    contact = await wa.contact(address)
    assert contact["status"] == "unsubscribed"
    assert contact["consent_history"][-1]["kind"] == "opt_out"
    # The others stay subscribed.
    assert (await wa.contact("4917100000002"))["status"] == "subscribed"


async def test_failed_131049_requeues_the_delivery_a_day_later(
    wa: WhatsApp, sent: Sent, runtime: Runtime, graph: FakeGraph
) -> None:
    address = "4917100000002"
    before = datetime.now(UTC)
    failed = status(sent.messages[address], "failed", at=int(time.time()), code=131049)
    assert (await wa.deliver(statuses(failed))).statuses_changed == 1
    rows = await _deliveries(wa, sent)
    assert rows[address]["status"] == "queued"
    async with runtime.db.read() as conn:
        row = (
            await conn.execute(
                select(deliveries.c.status, deliveries.c.next_attempt_at).where(
                    deliveries.c.id == sent.delivery_ids[address]
                )
            )
        ).one()
    assert row.status == "queued"
    assert row.next_attempt_at >= before + timedelta(hours=24)
    # Not retried now, and the person stays subscribed.
    await asyncio.sleep(0.3)
    assert len([m for m in graph.received(address) if m.type == "template"]) == 1
    assert (await wa.contact(address))["status"] == "subscribed"


async def test_out_of_order_and_duplicate_statuses_end_at_the_furthest(
    wa: WhatsApp, sent: Sent
) -> None:
    t0 = int(time.time())
    a, b, c = sent.messages.values()
    # a: read arrives before delivered, then everything again.
    assert (await wa.deliver(statuses(status(a, "read", at=t0 + 2)))).statuses_changed == 1
    late = statuses(status(a, "delivered", at=t0 + 1), status(a, "sent", at=t0))
    assert (await wa.deliver(late)).statuses_changed == 0
    assert (await wa.deliver(statuses(status(a, "read", at=t0 + 2)))).statuses_changed == 0
    # b: a failure, then a delivered from a second device proves delivery; a repeated
    # failure cannot undo it.
    undeliverable = status(b, "failed", at=t0 + 1, code=131026)
    assert (await wa.deliver(statuses(undeliverable))).statuses_changed == 1
    assert (await _deliveries(wa, sent))[b.to]["status"] == "failed"
    after = statuses(status(b, "delivered", at=t0 + 2), undeliverable)
    assert (await wa.deliver(after)).statuses_changed == 1
    # c: all three in one POST, shuffled and duplicated.
    shuffled = statuses(
        status(c, "delivered", at=t0 + 1),
        status(c, "read", at=t0 + 3),
        status(c, "sent", at=t0),
        status(c, "delivered", at=t0 + 1),
    )
    assert (await wa.deliver(shuffled)).statuses_changed == 1

    rows = await _deliveries(wa, sent)
    assert {a.to: rows[a.to]["status"], b.to: rows[b.to]["status"], c.to: rows[c.to]["status"]} == {
        a.to: "read",
        b.to: "delivered",
        c.to: "read",
    }
    assert rows[b.to]["error_code"] is None
    # The person of the 131026 failure keeps the subscription.
    assert (await wa.contact(b.to))["status"] == "subscribed"
    stats = (
        await wa.client.get(f"/api/v1/broadcasts/{sent.broadcast_id}", headers=wa.owner)
    ).json()["stats"]
    assert (stats["read"], stats["delivered"], stats["failed"]) == (2, 1, 0)


async def test_statuses_posted_to_another_channel_change_nothing(
    wa: WhatsApp, sent: Sent, graph: FakeGraph
) -> None:
    other = await wa.client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "Other number",
            "config": wa_config(graph, phone_number_id="1002", app_secret="other-secret"),
        },
        headers=wa.owner,
    )
    assert other.status_code == 201, other.text
    message = sent.messages["4917100000001"]
    report = statuses(status(message, "failed", at=int(time.time()), code=131050))
    report["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "1002"
    applied = await wa.deliver(report, secret="other-secret", channel_id=other.json()["id"])
    assert (applied.webhooks, applied.statuses_changed) == (1, 0)
    assert (await _deliveries(wa, sent))[message.to]["status"] == "sent"
    assert (await wa.contact(message.to))["status"] == "subscribed"


# --- 4. templates ------------------------------------------------------------------------


async def test_sync_returns_templates_with_parameter_counts(wa: WhatsApp, graph: FakeGraph) -> None:
    graph.add_template(
        "alert",
        "en",
        category="UTILITY",
        header="Breaking: {{1}}",
        body="{{1}} at {{2}}: {{3}}",
        buttons=[{"type": "URL", "text": "More", "url": "https://example.org/{{1}}"}],
    )
    graph.add_template("promo", "de", header_format="IMAGE", body="Neu im Laden", status="PAUSED")
    synced = await wa.sync()
    assert synced["synced"] == 3
    summary = [
        (t["name"], t["language"], t["category"], t["status"], t["parameters"])
        for t in synced["items"]
    ]
    assert summary == [
        (
            "alert",
            "en",
            "UTILITY",
            "APPROVED",
            {"body": 3, "header": 1, "header_format": "TEXT", "url_buttons": 1},
        ),
        (
            TEMPLATE,
            "de",
            "MARKETING",
            "APPROVED",
            {"body": 2, "header": 0, "header_format": None, "url_buttons": 0},
        ),
        (
            "promo",
            "de",
            "MARKETING",
            "PAUSED",
            {"body": 0, "header": 0, "header_format": "IMAGE", "url_buttons": 0},
        ),
    ]
    body = next(c for c in synced["items"][1]["components"] if c["type"] == "BODY")
    assert body["text"] == "Hallo {{1}}, heute: {{2}}"


async def test_sync_follows_the_paging_cursors(wa: WhatsApp, graph: FakeGraph) -> None:
    for n in range(129):
        graph.add_template(f"t{n:03d}", "de", body="Hallo")
    synced = await wa.sync()
    assert synced["synced"] == 130
    names = [t["name"] for t in synced["items"]]
    assert len(names) == len(set(names)) == 130
    assert names[:2] == [TEMPLATE, "t000"] and names[-1] == "t128"
    assert graph.requests["message_templates"] == 2


async def test_sync_on_a_sandbox_channel_is_409(
    client: httpx.AsyncClient, tenant: Any, assert_error: Any
) -> None:
    response = await client.post(
        f"/api/v1/channels/{tenant.channel_id}/templates/sync", headers=tenant.auth()
    )
    assert_error(response, 409, "conflict", "not whatsapp")


async def test_sync_with_a_rejected_token_is_502(
    client: httpx.AsyncClient, tenant: Any, graph: FakeGraph, assert_error: Any
) -> None:
    created = await client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "Revoked",
            "config": wa_config(graph, access_token="EAAG-revoked"),
        },
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    response = await client.post(
        f"/api/v1/channels/{created.json()['id']}/templates/sync", headers=tenant.auth()
    )
    assert_error(response, 502, "platform_error", "WhatsApp answered", "190")
    assert "EAAG-revoked" not in response.text


# --- 5. template broadcasts: checked when composed --------------------------------------


@pytest.fixture
async def synced(wa: WhatsApp, graph: FakeGraph) -> WhatsApp:
    """Synced templates (one paused) and one subscriber: only the template can be wrong."""
    graph.add_template("paused_one", "de", body="Hallo {{1}}", status="PAUSED")
    await wa.sync()
    await wa.writes("4917400000001", "START")
    return wa


async def _compose(wa: WhatsApp, **body: Any) -> httpx.Response:
    return await wa.client.post(
        "/api/v1/broadcasts", json={"channel_id": wa.id, **body}, headers=wa.owner
    )


async def test_whatsapp_broadcast_without_template_names_the_approved_ones(
    synced: WhatsApp, assert_error: Any
) -> None:
    message = assert_error(
        await _compose(synced, text="Hallo alle"), 422, "invalid", "approved template"
    )
    assert "news_update (de)" in message and "paused_one" not in message


async def test_broadcast_with_unknown_template(synced: WhatsApp, assert_error: Any) -> None:
    template = {**NEWS, "name": "nope"}
    assert_error(
        await _compose(synced, template=template),
        422,
        "invalid",
        "no template 'nope'",
        "news_update (de)",
    )


async def test_broadcast_with_wrong_parameter_count(synced: WhatsApp, assert_error: Any) -> None:
    template = {**NEWS, "body_parameters": ["{{ contact.name }}"]}
    assert_error(
        await _compose(synced, template=template), 422, "invalid", "needs 2 parameter(s), got 1"
    )


async def test_broadcast_with_paused_template(synced: WhatsApp, assert_error: Any) -> None:
    template = {"name": "paused_one", "language": "de", "body_parameters": ["x"]}
    assert_error(
        await _compose(synced, template=template), 422, "invalid", "PAUSED", "only APPROVED"
    )


async def test_broadcast_with_invalid_jinja_parameter(synced: WhatsApp, assert_error: Any) -> None:
    template = {**NEWS, "body_parameters": ["{{ contact.name", "x"]}
    assert_error(
        await _compose(synced, template=template), 422, "invalid", "template.body_parameters[1]"
    )


async def test_valid_template_broadcast(synced: WhatsApp) -> None:
    created = await _compose(synced, template=NEWS)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft"
    assert body["template"] == {
        **NEWS,
        "header_parameters": [],
        "button_parameters": [],
        "header_media": None,
    }
    assert body["text"] == "Hallo {{1}}, heute: {{2}}"
    assert body["stats"]["deferred"] == 0
    assert set(body["stats"]) == {
        "total",
        "queued",
        "deferred",
        "sent",
        "delivered",
        "read",
        "failed",
        "skipped",
    }


# --- 6. conversation replies and the 24-hour window -------------------------------------


async def test_reply_inside_the_window_is_sent(
    wa: WhatsApp, worker: Runtime, graph: FakeGraph
) -> None:
    address = "4917200000001"
    await wa.writes(address, "Wann tagt der Stadtrat?")
    conversation = await wa.conversation_of(address)
    shown = await wa.client.get(f"/api/v1/conversations/{conversation['id']}", headers=wa.owner)
    assert shown.json()["window_open"] is True
    reply = await wa.client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"text": "Am Dienstag um 18 Uhr."},
        headers=wa.tenant.auth(Role.AGENT),
    )
    assert reply.status_code == 201, reply.text
    message_id = reply.json()["id"]
    url = f"/api/v1/conversations/{conversation['id']}/messages"

    async def status_of_reply() -> str | None:
        items = (await wa.client.get(url, headers=wa.owner)).json()["items"]
        found = {m["id"]: m["status"] for m in items}[message_id]
        return None if found in {"queued", "sending"} else str(found)

    assert await wait_for(status_of_reply, "the reply to be sent") == "sent"
    [got] = graph.received(address)  # exactly once
    assert got.payload["type"] == "text"
    assert got.payload["text"]["body"] == "Am Dienstag um 18 Uhr."
    assert got.callback_data == f"m:{message_id}"
    # Its status webhook (named by the callback data) moves the message on.
    delivered = await wa.deliver(statuses(status(got, "delivered", at=int(time.time()))))
    assert delivered.statuses_changed == 1
    assert await status_of_reply() == "delivered"


async def test_reply_outside_the_window_needs_a_template(
    wa: WhatsApp, worker: Runtime, graph: FakeGraph, assert_error: Any
) -> None:
    await wa.sync()
    address = "4917200000002"
    await wa.writes(address, "Hallo?", at=time.time() - 25 * HOUR)
    conversation = await wa.conversation_of(address)
    url = f"/api/v1/conversations/{conversation['id']}"
    shown = await wa.client.get(url, headers=wa.owner)
    assert shown.json()["window_open"] is False
    agent = wa.tenant.auth(Role.AGENT)
    refused = await wa.client.post(f"{url}/messages", json={"text": "Hallo!"}, headers=agent)
    assert_error(refused, 422, "invalid", "24-hour window is closed", "news_update (de)")

    reply = await wa.client.post(f"{url}/messages", json={"template": NEWS}, headers=agent)
    assert reply.status_code == 201, reply.text
    assert reply.json()["kind"] == "template"

    async def arrived() -> list[SentMessage] | None:
        return graph.received(address) or None

    [got] = await wait_for(arrived, "the template at the platform")
    assert got.payload["template"]["name"] == TEMPLATE
    body = got.payload["template"]["components"][0]
    assert [p["text"] for p in body["parameters"]] == ["Anna", "Stadtrat"]


async def test_a_late_older_message_does_not_close_the_window(wa: WhatsApp) -> None:
    """Meta retries webhooks for days: a message written 30 h ago may arrive after one
    written an hour ago. The window runs from the newest message, whatever the order."""
    address = "4917200000009"
    newer = int(time.time()) - HOUR
    await wa.writes(address, "Neu", at=newer)
    await wa.writes(address, "Alt, von Meta erst jetzt zugestellt", at=newer - 29 * HOUR)
    conversation = await wa.conversation_of(address)
    shown = (
        await wa.client.get(f"/api/v1/conversations/{conversation['id']}", headers=wa.owner)
    ).json()
    assert shown["window_open"] is True
    closes = datetime.fromisoformat(shown["window_closes_at"])
    assert closes == datetime.fromtimestamp(newer, UTC) + timedelta(hours=24)
    assert datetime.fromisoformat(shown["last_inbound_at"]) == datetime.fromtimestamp(newer, UTC)
    assert (await wa.contact(address))["last_inbound_at"] == shown["last_inbound_at"]
    reply = await wa.client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"text": "Gern!"},
        headers=wa.owner,
    )
    assert reply.status_code == 201, reply.text


async def test_caption_of_a_reply_with_media_is_limited(wa: WhatsApp, assert_error: Any) -> None:
    await wa.writes("4917200000003", "Foto?")
    conversation = await wa.conversation_of("4917200000003")
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    caption = {"text": "x" * 1025, "media_id": "4490709327384033", "media_kind": "image"}
    assert_error(await wa.client.post(url, json=caption, headers=wa.owner), 422, "invalid", "1024")
    assert_error(
        await wa.client.post(url, json={"text": "x" * 4097}, headers=wa.owner),
        422,
        "invalid",
        "4096",
    )
    fits = await wa.client.post(url, json={**caption, "text": "x" * 1024}, headers=wa.owner)
    assert fits.status_code == 201, fits.text


# --- 7. business profile ----------------------------------------------------------------


async def test_profile_shows_the_platform_profile_and_the_imprint(
    wa: WhatsApp, graph: FakeGraph
) -> None:
    graph.profile["about"] = "Lokalnachrichten"
    urls = {"imprint_url": "https://example.org/impressum", "privacy_url": "https://example.org/ds"}
    changed = await wa.client.patch("/api/v1/workspace", json=urls, headers=wa.owner)
    assert changed.status_code == 200, changed.text
    shown = await wa.client.get(wa.url("/profile"), headers=wa.tenant.auth(Role.AGENT))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["profile"]["about"] == "Lokalnachrichten"
    assert body["profile"] == graph.profile
    assert (body["imprint_url"], body["privacy_url"]) == (urls["imprint_url"], urls["privacy_url"])


async def test_profile_update_publishes_the_imprint_urls(wa: WhatsApp, graph: FakeGraph) -> None:
    urls = {"imprint_url": "https://example.org/impressum", "privacy_url": "https://example.org/ds"}
    assert (await wa.client.patch("/api/v1/workspace", json=urls, headers=wa.owner)).is_success
    updated = await wa.client.patch(
        wa.url("/profile"), json={"about": "Neu hier"}, headers=wa.owner
    )
    assert updated.status_code == 200, updated.text
    assert graph.profile["about"] == "Neu hier"
    assert graph.profile["websites"] == [urls["imprint_url"], urls["privacy_url"]]
    assert updated.json()["profile"]["websites"] == graph.profile["websites"]


async def test_profile_update_refusals(wa: WhatsApp, graph: FakeGraph, assert_error: Any) -> None:
    assert_error(
        await wa.client.patch(wa.url("/profile"), json={"about": "x" * 140}, headers=wa.owner),
        422,
        "invalid",
        "about",
    )
    assert_error(
        await wa.client.patch(
            wa.url("/profile"), json={"about": "Hi"}, headers=wa.tenant.auth(Role.AGENT)
        ),
        403,
        "forbidden",
    )
    assert graph.profile["about"] == "Rundfunk"
    assert graph.requests["business_profile_update"] == 0


# --- 8. media upload --------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(40)


async def _upload(wa: WhatsApp, data: bytes, mime: str = "image/png") -> httpx.Response:
    return await wa.client.post(
        wa.url("/media"),
        files={"file": ("picture.png", data, mime)},
        headers=wa.tenant.auth(Role.AGENT),
    )


async def test_media_upload_reaches_the_platform(wa: WhatsApp, graph: FakeGraph) -> None:
    response = await _upload(wa, PNG)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "media_id": body["media_id"],
        "media_kind": "image",
        "mime_type": "image/png",
        "size": len(PNG),
    }
    assert graph.media[body["media_id"]] == PNG
    assert graph.media_types[body["media_id"]] == "image/png"


async def test_media_upload_limits(wa: WhatsApp, graph: FakeGraph, assert_error: Any) -> None:
    too_big = PNG + bytes(6 * 1024 * 1024)
    assert_error(await _upload(wa, too_big), 422, "invalid", "5 MB", "image")
    assert_error(await _upload(wa, b""), 422, "invalid", "empty")
    assert graph.requests["media_upload"] == 0 and graph.media == {}


# --- 9. growth links --------------------------------------------------------------------


async def test_growth_links_need_the_display_number(wa: WhatsApp, assert_error: Any) -> None:
    assert_error(
        await wa.client.get(wa.url("/links"), headers=wa.owner),
        409,
        "conflict",
        "display_phone_number",
    )
    assert_error(await wa.client.get(wa.url("/links/qr.png"), headers=wa.owner), 409, "conflict")


async def test_growth_links_and_qr_codes(wa: WhatsApp, assert_error: Any) -> None:
    for key, name in (("sport", "Sport"), ("linie-7", "Linie 7")):
        made = await wa.client.post(
            "/api/v1/topics", json={"key": key, "name": name}, headers=wa.owner
        )
        assert made.status_code == 201, made.text
    patched = await wa.client.patch(
        wa.url(), json={"config": {"display_phone_number": "+49 151 23456789"}}, headers=wa.owner
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["display_phone_number"] == "+49 151 23456789"

    listed = await wa.client.get(wa.url("/links"), headers=wa.tenant.auth(Role.AGENT))
    assert listed.status_code == 200, listed.text
    assert [(i["topic"], i["text"], i["url"]) for i in listed.json()["items"]] == [
        (None, "START", "https://wa.me/4915123456789?text=START"),
        ("linie-7", "START linie-7", "https://wa.me/4915123456789?text=START%20linie-7"),
        ("sport", "START sport", "https://wa.me/4915123456789?text=START%20sport"),
    ]
    assert listed.json()["items"][2]["qr_png"] == wa.url("/links/qr.png?topic=sport")

    png = await wa.client.get(wa.url("/links/qr.png"), headers=wa.owner)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = await wa.client.get(wa.url("/links/qr.svg"), params={"topic": "sport"}, headers=wa.owner)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text
    sport = await wa.client.get(
        wa.url("/links/qr.png"), params={"topic": "sport"}, headers=wa.owner
    )
    assert sport.content.startswith(b"\x89PNG") and sport.content != png.content
    assert_error(
        await wa.client.get(wa.url("/links/qr.png"), params={"topic": "nope"}, headers=wa.owner),
        404,
        "not_found",
        "nope",
    )


# --- 10. a revoked token disables the channel; a new one and status active revive it ----


async def test_error_190_disables_and_a_new_token_reactivates(
    wa: WhatsApp, worker: Runtime, graph: FakeGraph, assert_error: Any
) -> None:
    address = "4917300000001"
    await wa.writes(address, "Hallo")
    conversation = await wa.conversation_of(address)
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    graph.inject(190, 1.0, http_status=401)
    first = await wa.client.post(url, json={"text": "Erster Versuch"}, headers=wa.owner)
    assert first.status_code == 201, first.text

    async def disabled() -> dict[str, Any] | None:
        body: dict[str, Any] = (await wa.client.get(wa.url(), headers=wa.owner)).json()
        return body if body["status"] == "disabled" else None

    channel = await wait_for(disabled, "the channel to be disabled")
    assert "190" in channel["status_reason"]
    audit = (await wa.client.get("/api/v1/audit", headers=wa.owner)).json()["items"]
    disables = [e for e in audit if e["action"] == "channel.disable"]
    assert [(e["target_id"], "190" in e["details"]["reason"]) for e in disables] == [(wa.id, True)]
    # Nothing more is accepted for sending on a disabled channel.
    assert_error(
        await wa.client.post(url, json={"text": "Noch einer"}, headers=wa.owner),
        409,
        "conflict",
        "disabled",
    )
    assert graph.received(address) == []

    # The admin makes a new token at Meta (the old one stops working) and enters it.
    new_token = "EAAG-fresh-token-after-190"
    graph.clear_injections()
    graph.access_token = new_token
    patched = await wa.client.patch(
        wa.url(), json={"config": {"access_token": new_token}, "status": "active"}, headers=wa.owner
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["status"], patched.json()["status_reason"]) == ("active", None)
    assert patched.json()["verify_token"] == wa.channel["verify_token"]
    assert new_token not in patched.text

    async def arrived() -> list[SentMessage] | None:
        return graph.received(address) or None

    [got] = await wait_for(arrived, "the waiting reply at the platform")
    assert got.payload["text"]["body"] == "Erster Versuch"
