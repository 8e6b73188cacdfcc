"""Webhooks, item by item: one bad item of a signed POST costs nothing else.

The real app (lifespan running the webhook ingestion) on a real database of the engine
under test, a WhatsApp channel pointed at the fake Graph API on loopback, signed
webhooks through ``POST /webhooks/whatsapp/{id}``. Meta got its 200 and never sends a
webhook again, so nothing in it may be lost:

- the exact items that used to fail a whole stored webhook for good (a lone surrogate,
  a callback id of 30 digits, and on PostgreSQL a NUL, a ``from`` over 128 and a name
  over 200 characters) are cleaned and applied, and the rest of the POST with them;
- an item the database still refuses (a trigger stands in for whatever an item may
  hit) lands in the dead-letter list with its error — in the API, on the channel's
  console page, in the Prometheus counter — while the others are applied; retry and
  discard work, for admins of that workspace only.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from rundfunk.channels.whatsapp.webhook import sign
from rundfunk.config import Settings
from rundfunk.services import webhook_inbox
from rundfunk.services.actors import Role
from rundfunk.testing.fake_graph import FakeGraph
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime

ACCESS_TOKEN = "EAAG-items-test-token"
APP_SECRET = "items-test-app-secret"
PHONE_NUMBER_ID = "5005"
WABA_ID = "6006"
REFUSED = "VERWEIGERT"  # the test trigger refuses messages with this text


# --- the platform's side ----------------------------------------------------------------


def _message(address: str, body: str, *, n: int) -> dict[str, Any]:
    return {
        "from": address,
        "id": f"wamid.items-{address[-6:]}-{n}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": body},
    }


def _webhook(
    messages: list[dict[str, Any]],
    statuses: list[dict[str, Any]] | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata = {"display_phone_number": "4915100000000", "phone_number_id": PHONE_NUMBER_ID}
    people = {m["from"]: (names or {}).get(m["from"], "Person") for m in messages}
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": metadata,
        "contacts": [{"profile": {"name": n}, "wa_id": a} for a, n in people.items()],
        "messages": messages,
    }
    if statuses:
        value["statuses"] = statuses
    change = {"field": "messages", "value": value}
    entry = {"id": WABA_ID, "time": int(time.time()), "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def _status(wamid: str, state: str, callback: str) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": "4917300000001",
        "biz_opaque_callback_data": callback,
    }


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, graph: FakeGraph) -> Settings:
    """The operator points every WhatsApp channel at the fake Graph server."""
    return settings.model_copy(update={"whatsapp_api_base_url": graph.base_url})


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
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
        seed=5,
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@dataclass
class Number:
    """A workspace's WhatsApp channel, and the webhooks Meta sends to it."""

    client: httpx.AsyncClient
    app: FastAPI
    tenant: Any
    id: int

    def auth(self, role: Role = Role.OWNER) -> dict[str, str]:
        return dict(self.tenant.auth(role))

    async def post(self, body: dict[str, Any]) -> None:
        """A signed webhook through the real route, answered 200, then applied."""
        raw = json.dumps(body).encode()  # a lone surrogate goes out as the escape \ud800
        response = await self.client.post(
            f"/webhooks/whatsapp/{self.id}",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(APP_SECRET, raw),
            },
        )
        assert response.status_code == 200, response.text
        await self.app.state.ingestion.drain()

    async def messages_of(self, address: str) -> list[dict[str, Any]]:
        """What the contact wrote, as the API shows it (empty: no such contact)."""
        listed = await self.client.get(
            "/api/v1/contacts", params={"channel_id": self.id, "limit": 500}, headers=self.auth()
        )
        found = [c for c in listed.json()["items"] if c["address"] == address]
        if not found:
            return []
        conversations = (await self.client.get("/api/v1/conversations", headers=self.auth())).json()
        ids = [c["id"] for c in conversations["items"] if c["contact_id"] == found[0]["id"]]
        if not ids:
            return []
        thread = await self.client.get(
            f"/api/v1/conversations/{ids[0]}/messages", headers=self.auth()
        )
        return [m for m in thread.json()["items"] if m["direction"] == "in"]

    async def contact(self, address: str) -> dict[str, Any] | None:
        listed = await self.client.get(
            "/api/v1/contacts", params={"channel_id": self.id, "limit": 500}, headers=self.auth()
        )
        found = [c for c in listed.json()["items"] if c["address"] == address]
        return found[0] if found else None

    async def failed(self, role: Role = Role.ADMIN, **params: Any) -> httpx.Response:
        return await self.client.get(
            "/api/v1/webhooks/failed", params=params, headers=self.auth(role)
        )


async def _number(client: httpx.AsyncClient, app: FastAPI, tenant: Any, graph: FakeGraph) -> Number:
    config = {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "throughput": 1000,
        "pair_interval_seconds": 0,
    }
    created = await client.post(
        "/api/v1/channels",
        json={"kind": "whatsapp", "name": "Items", "config": config},
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    return Number(client, app, tenant, int(created.json()["id"]))


@pytest.fixture
async def number(client: httpx.AsyncClient, app: FastAPI, tenant: Any, graph: FakeGraph) -> Number:
    return await _number(client, app, tenant, graph)


@dataclass
class Reply:
    """An agent's reply the platform accepted: status webhooks name it."""

    id: int
    wamid: str
    callback: str
    conversation_id: int


@pytest.fixture
async def reply(number: Number, runtime: Runtime, graph: FakeGraph) -> Reply:
    """Someone writes, an agent answers, the dispatcher sends it to the fake platform."""
    address = "4917300000001"
    graph.open_window(address)
    await number.post(_webhook([_message(address, "Wann tagt der Stadtrat?", n=0)]))
    conversations = (await number.client.get("/api/v1/conversations", headers=number.auth())).json()
    [conversation] = [c for c in conversations["items"] if c["contact_address"] == address]
    await runtime.start_worker()
    sent = await number.client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"text": "Am Dienstag."},
        headers=number.auth(Role.AGENT),
    )
    assert sent.status_code == 201, sent.text
    for _ in range(500):
        got = graph.received(address)
        if got:
            break
        await asyncio.sleep(0.01)
    [message] = graph.received(address)
    reply = Reply(int(sent.json()["id"]), message.wamid, message.callback_data, conversation["id"])
    assert await _status_of(number, reply) == "sent"
    return reply


async def _status_of(number: Number, reply: Reply) -> str:
    for _ in range(300):
        thread = await number.client.get(
            f"/api/v1/conversations/{reply.conversation_id}/messages", headers=number.auth()
        )
        found = {m["id"]: m["status"] for m in thread.json()["items"]}[reply.id]
        if found not in {"queued", "sending"}:
            return str(found)
        await asyncio.sleep(0.01)
    raise AssertionError("the reply was not sent")


@dataclass
class Refusing:
    """A database trigger that refuses writes to ``messages`` (``event`` INSERT or
    UPDATE) when ``condition`` holds: the stand-in for whatever an item may still run
    into at the database. Dropped again by ``lift`` (and after the test)."""

    runtime: Runtime
    event: str = "INSERT"
    condition: str = f"NEW.text LIKE '%{REFUSED}%'"
    installed: bool = False

    async def install(self) -> None:
        async with self.runtime.db.write() as conn:
            if self.runtime.db.is_sqlite:
                await conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_items BEFORE {self.event} ON messages"
                        f" WHEN {self.condition}"
                        " BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
                    )
                )
            else:
                await conn.execute(
                    text(
                        "CREATE FUNCTION refuse_items() RETURNS trigger AS $$ BEGIN"
                        f" IF {self.condition} THEN"
                        " RAISE EXCEPTION 'refused by the test trigger'"
                        " USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END"
                        " $$ LANGUAGE plpgsql"
                    )
                )
                await conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_items BEFORE {self.event} ON messages"
                        " FOR EACH ROW EXECUTE FUNCTION refuse_items()"
                    )
                )
        self.installed = True

    async def lift(self) -> None:
        if not self.installed:
            return
        async with self.runtime.db.write() as conn:
            if self.runtime.db.is_sqlite:
                await conn.execute(text("DROP TRIGGER refuse_items"))
            else:
                await conn.execute(text("DROP TRIGGER refuse_items ON messages"))
                await conn.execute(text("DROP FUNCTION refuse_items()"))
        self.installed = False


@pytest.fixture
async def refusing(runtime: Runtime) -> AsyncIterator[Refusing]:
    """Inbound messages with ``REFUSED`` in their text are refused by the database."""
    trigger = Refusing(runtime)
    await trigger.install()
    try:
        yield trigger
    finally:
        await trigger.lift()  # a reused PostgreSQL database must not keep it


@pytest.fixture
async def refusing_read(runtime: Runtime) -> AsyncIterator[Refusing]:
    """A message's move to ``read`` is refused by the database."""
    trigger = Refusing(runtime, event="UPDATE", condition="NEW.status = 'read'")
    await trigger.install()
    try:
        yield trigger
    finally:
        await trigger.lift()


async def _pending(runtime: Runtime) -> int:
    return await webhook_inbox.pending(runtime.db)


async def _dead_letter_count(client: httpx.AsyncClient, item: str) -> float:
    """``rundfunk_webhook_dead_letters_total`` for WhatsApp ``item``s, from /metrics."""
    scraped = await client.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    pattern = (
        r'^rundfunk_webhook_dead_letters_total\{channel_kind="whatsapp",item="'
        + item
        + r'"\} ([0-9.e+]+)$'
    )
    found = re.search(pattern, scraped.text, re.M)
    return float(found.group(1)) if found else 0.0


# --- the exact items that used to fail a whole webhook ----------------------------------

B, C, D = "4917300000002", "4917300000003", "4917300000004"
LONG_FROM = "49" + "1" * 198  # 200 characters; contacts.address holds 128

# (the bad message, what is stored of it: address, name, text)
BAD_MESSAGES = {
    "lone_surrogate_text": (
        _message(D, "Hallo \ud800 Welt", n=1),
        "Person",
        (D, "Person", "Hallo \ufffd Welt"),
    ),
    "nul_in_text": (_message(D, "Hal\x00lo", n=2), "Person", (D, "Person", "Hal\ufffdlo")),
    "from_over_128": (
        _message(LONG_FROM, "Hallo", n=3),
        "Person",
        (LONG_FROM[:128], "Person", "Hallo"),
    ),
    "name_over_200": (_message(D, "Hallo", n=4), "N" * 250, (D, "N" * 200, "Hallo")),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
async def test_a_bad_message_is_cleaned_and_the_rest_of_its_webhook_applied(
    case: str, number: Number, reply: Reply, runtime: Runtime
) -> None:
    bad, name, (address, stored_name, stored_text) = BAD_MESSAGES[case]
    webhook = _webhook(
        [_message(B, "Guten Tag", n=1), bad, _message(C, "Servus", n=1)],
        [_status(reply.wamid, "delivered", reply.callback)],
        names={bad["from"]: name},
    )
    await number.post(webhook)

    # The good items of the same POST: both messages and the status are applied ...
    assert [m["text"] for m in await number.messages_of(B)] == ["Guten Tag"]
    assert [m["text"] for m in await number.messages_of(C)] == ["Servus"]
    assert await _status_of(number, reply) == "delivered"
    # ... and the bad one is cleaned and kept, not lost.
    contact = await number.contact(address)
    assert contact is not None and contact["name"] == stored_name
    assert [m["text"] for m in await number.messages_of(address)] == [stored_text]
    assert (await number.failed()).json()["items"] == []
    assert await _pending(runtime) == 0  # nothing left behind in the inbox


async def test_a_callback_id_no_column_holds_is_unknown_and_the_status_still_applies(
    number: Number, reply: Reply, runtime: Runtime
) -> None:
    webhook = _webhook(
        [_message(B, "Guten Tag", n=5)],
        [
            _status(reply.wamid, "delivered", reply.callback),
            # d: and 30 digits: no row has such an id; found by its wamid instead.
            _status(reply.wamid, "read", "d:" + "9" * 30),
        ],
    )
    await number.post(webhook)
    assert await _status_of(number, reply) == "read"
    assert [m["text"] for m in await number.messages_of(B)] == ["Guten Tag"]
    assert (await number.failed()).json()["items"] == []
    assert await _pending(runtime) == 0
