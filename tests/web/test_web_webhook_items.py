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
from random import Random
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from rundfunk.channels.whatsapp.webhook import sign
from rundfunk.config import Settings
from rundfunk.core.text import clean_text
from rundfunk.db.tables import messages
from rundfunk.services import sessions, webhook_inbox
from rundfunk.services.actors import Role
from rundfunk.testing.fake_graph import FakeGraph
from rundfunk.web.app import create_app
from rundfunk.web.ui.session import SESSION_COOKIE
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
    """A database trigger that refuses writes to ``table`` (``event`` INSERT, UPDATE or
    DELETE) when ``condition`` holds: the stand-in for whatever an item may still run
    into at the database. Dropped again by ``lift`` (and after the test)."""

    runtime: Runtime
    event: str = "INSERT"
    condition: str = f"NEW.text LIKE '%{REFUSED}%'"
    table: str = "messages"
    installed: bool = False

    async def install(self) -> None:
        async with self.runtime.db.write() as conn:
            if self.runtime.db.is_sqlite:
                await conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_items BEFORE {self.event} ON {self.table}"
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
                        " USING ERRCODE = 'check_violation'; END IF;"
                        f" RETURN {'OLD' if self.event == 'DELETE' else 'NEW'}; END"
                        " $$ LANGUAGE plpgsql"
                    )
                )
                await conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_items BEFORE {self.event} ON {self.table}"
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
                await conn.execute(text(f"DROP TRIGGER refuse_items ON {self.table}"))
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


@pytest.fixture
async def refusing_removal(runtime: Runtime) -> AsyncIterator[Refusing]:
    """A stored webhook cannot be removed from the inbox until it failed five times:
    the whole webhook fails, again and again, before any item could be blamed."""
    trigger = Refusing(runtime, event="DELETE", condition="OLD.attempts < 5", table="webhook_inbox")
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


# --- what still cannot be applied: the dead-letter list ---------------------------------


async def test_an_item_the_database_refuses_is_dead_lettered_and_the_rest_applied(
    number: Number, reply: Reply, runtime: Runtime, refusing: Refusing
) -> None:
    before = await _dead_letter_count(number.client, "message")
    webhook = _webhook(
        [
            _message(B, "Guten Tag", n=6),
            _message(D, f"Bitte {REFUSED}", n=6),
            _message(C, "Servus", n=6),
        ],
        [_status(reply.wamid, "delivered", reply.callback)],
    )
    await number.post(webhook)

    assert [m["text"] for m in await number.messages_of(B)] == ["Guten Tag"]
    assert [m["text"] for m in await number.messages_of(C)] == ["Servus"]
    assert await _status_of(number, reply) == "delivered"
    assert await number.messages_of(D) == []
    assert await _pending(runtime) == 0  # not left in the inbox to fail again and again
    # Kept with its error: in the API, the counter (and the log).
    listed = await number.failed()
    assert listed.status_code == 200, listed.text
    [failed] = listed.json()["items"]
    assert failed["kind"] == "message" and failed["channel_id"] == number.id
    assert failed["item"]["address"] == D and failed["item"]["text"] == f"Bitte {REFUSED}"
    assert "refused by the test trigger" in failed["error"]
    assert failed["attempts"] == 1
    assert failed["first_failed_at"] == failed["last_failed_at"]
    assert await _dead_letter_count(number.client, "message") == before + 1

    # A retry while the cause is still there: 409 with the reason, one attempt more.
    url = f"/api/v1/webhooks/failed/{failed['id']}/retry"
    again = await number.client.post(url, headers=number.auth(Role.ADMIN))
    assert again.status_code == 409, again.text
    assert "refused by the test trigger" in again.json()["error"]["message"]
    [still] = (await number.failed()).json()["items"]
    assert still["attempts"] == 2 and still["last_failed_at"] >= failed["last_failed_at"]
    # The cause fixed, the retry applies it exactly like the original and it leaves the list.
    await refusing.lift()
    done = await number.client.post(url, headers=number.auth(Role.ADMIN))
    assert done.status_code == 200, done.text
    assert done.json() == {"applied": True, "messages": 1, "statuses_changed": 0}
    assert [m["text"] for m in await number.messages_of(D)] == [f"Bitte {REFUSED}"]
    assert (await number.failed()).json()["items"] == []
    audit = (await number.client.get("/api/v1/audit", headers=number.auth())).json()["items"]
    assert [e["target_id"] for e in audit if e["action"] == "webhook_item.retry"] == [failed["id"]]
    gone = await number.client.post(url, headers=number.auth(Role.ADMIN))
    assert gone.status_code == 404, gone.text


async def test_a_refused_status_is_dead_lettered_and_the_other_statuses_applied(
    number: Number, reply: Reply, runtime: Runtime, refusing_read: Refusing
) -> None:
    """A webhook of statuses only: applied with hundreds of others in one batch, which
    fails — then each status on its own, and only the refused one is kept."""
    before = await _dead_letter_count(number.client, "status")
    await number.post(
        _webhook(
            [],
            [
                _status(reply.wamid, "delivered", reply.callback),
                _status(reply.wamid, "read", reply.callback),
                _status("wamid.nobody-sent-this", "delivered", "m:999999"),
            ],
        )
    )
    assert await _status_of(number, reply) == "delivered"
    assert await _pending(runtime) == 0
    [failed] = (await number.failed()).json()["items"]
    assert failed["kind"] == "status"
    assert (
        failed["item"]["status"] == "read" and failed["item"]["provider_message_id"] == reply.wamid
    )
    assert failed["item"]["callback_data"] == reply.callback
    assert "refused by the test trigger" in failed["error"]
    assert await _dead_letter_count(number.client, "status") == before + 1

    await refusing_read.lift()
    done = await number.client.post(
        f"/api/v1/webhooks/failed/{failed['id']}/retry", headers=number.auth(Role.ADMIN)
    )
    assert done.status_code == 200, done.text
    assert done.json()["statuses_changed"] == 1
    assert await _status_of(number, reply) == "read"
    assert (await number.failed()).json()["items"] == []


async def test_failed_items_are_for_admins_of_their_workspace_only(
    number: Number,
    client: httpx.AsyncClient,
    app: FastAPI,
    make_tenant: Any,
    graph: FakeGraph,
    refusing: Refusing,
    assert_error: Any,
) -> None:
    await number.post(
        _webhook(
            [_message(D, f"{REFUSED} eins", n=7), _message(D, f"{REFUSED} zwei", n=8)],
        )
    )
    first, second = (await number.failed()).json()["items"]
    base = "/api/v1/webhooks/failed"

    # Below admin: no list, no retry, no discard.
    for role in (Role.EDITOR, Role.AGENT):
        assert_error(await number.failed(role), 403, "forbidden")
        assert_error(
            await client.post(f"{base}/{first['id']}/retry", headers=number.auth(role)),
            403,
            "forbidden",
        )
        assert_error(
            await client.delete(f"{base}/{first['id']}", headers=number.auth(role)),
            403,
            "forbidden",
        )
    # Another workspace's admin neither sees nor touches them.
    other = await make_tenant("other")
    theirs = await client.get(base, headers=other.auth(Role.ADMIN))
    assert theirs.status_code == 200 and theirs.json()["items"] == []
    assert_error(
        await client.post(f"{base}/{first['id']}/retry", headers=other.auth(Role.ADMIN)),
        404,
        "not_found",
    )
    assert_error(
        await client.delete(f"{base}/{first['id']}", headers=other.auth(Role.ADMIN)),
        404,
        "not_found",
    )
    assert len((await number.failed()).json()["items"]) == 2
    # Paged, bounded.
    page = (await number.failed(limit=1)).json()
    assert [i["id"] for i in page["items"]] == [first["id"]]
    assert page["next_after_id"] == first["id"]
    rest = (await number.failed(limit=1, after_id=page["next_after_id"])).json()
    assert [i["id"] for i in rest["items"]] == [second["id"]]
    assert_error(await number.failed(after_id=2**63), 422, "invalid")
    assert_error(await client.delete(f"{base}/{2**63}", headers=number.auth()), 422, "invalid")

    # Discarded: gone without being applied, and audited.
    gone = await client.delete(f"{base}/{first['id']}", headers=number.auth(Role.ADMIN))
    assert gone.status_code == 204, gone.text
    assert [i["id"] for i in (await number.failed()).json()["items"]] == [second["id"]]
    assert await number.messages_of(D) == []
    audit = (await client.get("/api/v1/audit", headers=number.auth())).json()["items"]
    assert [e["target_id"] for e in audit if e["action"] == "webhook_item.discard"] == [first["id"]]
    assert_error(
        await client.delete(f"{base}/{first['id']}", headers=number.auth()), 404, "not_found"
    )


async def test_a_webhook_that_keeps_failing_as_a_whole_is_dead_lettered_after_five_tries(
    number: Number, reply: Reply, runtime: Runtime, refusing_removal: Refusing
) -> None:
    await number.post(_webhook([], [_status(reply.wamid, "delivered", reply.callback)]))
    for _ in range(20):  # each pass of the applier is one failed attempt
        if await _pending(runtime) == 0:
            break
        await number.app.state.ingestion.drain()
    assert await _pending(runtime) == 0  # not left in the inbox for good
    [failed] = (await number.failed()).json()["items"]
    assert failed["kind"] == "webhook" and failed["attempts"] == 1
    assert "refused by the test trigger" in failed["error"]
    body = json.loads(failed["item"]["body"])
    assert body["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] == reply.wamid
    assert await _status_of(number, reply) == "sent"  # rolled back with its webhook

    # Retried: back into the inbox, where the applier carries it out.
    await refusing_removal.lift()
    done = await number.client.post(
        f"/api/v1/webhooks/failed/{failed['id']}/retry", headers=number.auth(Role.ADMIN)
    )
    assert done.status_code == 200, done.text
    await number.app.state.ingestion.drain()
    assert await _status_of(number, reply) == "delivered"
    assert await _pending(runtime) == 0
    assert (await number.failed()).json()["items"] == []


# --- the console: the channel's page ----------------------------------------------------


@dataclass
class Console:
    client: httpx.AsyncClient
    cookie: dict[str, str]
    csrf: str

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers=self.cookie)

    async def post(self, path: str, *, csrf: bool = True) -> httpx.Response:
        form = {"csrf_token": self.csrf} if csrf else {}
        return await self.client.post(path, data=form, headers=self.cookie)


def _flash(response: httpx.Response) -> str:
    """The message a redirect leaves for the next page (the flash cookie)."""
    found = re.search(r"rf_flash=([^;]*)", response.headers.get("set-cookie", ""))
    return unquote(found.group(1)).strip('"') if found else ""


async def _console(runtime: Runtime, client: httpx.AsyncClient, member_id: int) -> Console:
    opened = await sessions.open_session(runtime.db, member_id=member_id)
    member = await sessions.session_member(runtime.db, opened.token)
    assert member is not None
    cookie = {"cookie": f"{SESSION_COOKIE}={opened.token}", "accept": "text/html"}
    return Console(client, cookie, member.csrf_token)


async def test_the_channel_page_lists_failed_items_with_retry_and_discard(
    number: Number,
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_tenant: Any,
    refusing: Refusing,
) -> None:
    page_url = f"/channels/{number.id}"
    admin = await _console(runtime, client, number.tenant.member_ids[Role.ADMIN])
    assert "Failed webhook items" not in (await admin.get(page_url)).text  # none: no section
    await number.post(
        _webhook([_message(D, f"{REFUSED} eins", n=9), _message(D, f"{REFUSED} zwei", n=10)])
    )
    first, second = (await number.failed()).json()["items"]

    page = await admin.get(page_url)
    assert page.status_code == 200, page.text
    assert "Failed webhook items" in page.text
    assert f"{REFUSED} eins" in page.text and "refused by the test trigger" in page.text
    retry_url = f"/channels/{number.id}/failed/{first['id']}/retry"
    discard_url = f"/channels/{number.id}/failed/{second['id']}/discard"
    assert f'action="{retry_url}"' in page.text and f'action="{discard_url}"' in page.text

    # Forms without the session's CSRF token change nothing.
    assert (await admin.post(retry_url, csrf=False)).status_code == 403
    assert (await admin.post(discard_url, csrf=False)).status_code == 403
    assert len((await number.failed()).json()["items"]) == 2
    # An editor has no channel pages; another workspace's admin finds nothing.
    editor = await _console(runtime, client, number.tenant.member_ids[Role.EDITOR])
    assert (await editor.post(retry_url)).status_code == 403
    other = await make_tenant("other")
    stranger = await _console(runtime, client, other.member_ids[Role.ADMIN])
    assert (await stranger.post(retry_url)).status_code == 404
    assert (await stranger.post(discard_url)).status_code == 404

    # Still refused: the page says so and keeps it; then fixed, retried, applied.
    still = await admin.post(retry_url)
    assert still.status_code == 303 and still.headers["location"].endswith("#failed")
    assert "still cannot be applied" in _flash(still)
    assert len((await number.failed()).json()["items"]) == 2
    await refusing.lift()
    done = await admin.post(retry_url)
    assert done.status_code == 303 and _flash(done) == "The item is applied."
    assert [m["text"] for m in await number.messages_of(D)] == [f"{REFUSED} eins"]
    assert (await admin.post(discard_url)).status_code == 303
    assert (await number.failed()).json()["items"] == []
    assert "Failed webhook items" not in (await admin.get(page_url)).text

    # In German for a member who chose German.
    await refusing.install()
    await number.post(_webhook([_message(D, f"{REFUSED} drei", n=11)]))
    member = await sessions.session_member(runtime.db, admin.cookie["cookie"].split("=", 1)[1])
    assert member is not None
    await sessions.set_locale(runtime.db, member=member, locale="de")
    german = (await admin.get(page_url)).text
    assert "Fehlgeschlagene Webhook-Einträge" in german
    assert "Erneut versuchen" in german and "Verwerfen" in german


# --- fuzzed: nothing lost ---------------------------------------------------------------

NASTY: list[Any] = [
    "\ud800",
    "a\x00b",
    "\udfff\ud800",
    "x" * 300,
    "😀" * 70,
    "",
    " ",
    10**30,
    -1,
    1.5,
    float("nan"),
    None,
    True,
    [],
    {"nested": ["\ud800", "\x00"]},
]


def _fuzzed(rng: Random, n: int) -> tuple[dict[str, Any], list[str]]:
    """A webhook with 1-3 messages and 0-3 statuses whose fields are picked from
    ``NASTY`` (or sane); the provider ids of the messages that name a sender and an id."""

    def pick(sane: Any) -> Any:
        return rng.choice(NASTY) if rng.random() < 0.4 else sane

    messages, expected = [], []
    for i in range(rng.randint(1, 3)):
        sender = pick(f"49171{n:04d}{i}")
        message_id = f"wamid.fuzz-{n}-{i}-" + str(pick("m"))[:200]
        kind = rng.choice(["text", "image", "location", "interactive", "reaction", "nfm"])
        content = {
            "text": {"body": pick("Hallo")},
            "image": {"id": pick("media-1"), "caption": pick("Bild"), "mime_type": pick("x")},
            "location": {"latitude": pick(52.5), "longitude": pick(13.4), "name": pick("Ort")},
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": pick("START"), "title": pick("t")},
            },
            "reaction": {"message_id": pick("wamid.x"), "emoji": pick("👍")},
            "nfm": pick({}),
        }[kind]
        messages.append(
            {
                "from": sender,
                "id": message_id,
                "timestamp": pick(str(int(time.time()))),
                "type": kind,
                kind: content,
                "context": pick({"from": pick("4917"), "id": pick("wamid.0")}),
            }
        )
        if isinstance(sender, str) and sender:
            expected.append(message_id[:128])
    statuses = [
        {
            "id": pick(f"wamid.fuzz-status-{n}-{i}"),
            "status": pick(rng.choice(["sent", "delivered", "read", "failed"])),
            "timestamp": pick("1700000000"),
            "recipient_id": pick("4917"),
            "biz_opaque_callback_data": pick(
                rng.choice(["d:" + "9" * rng.randint(1, 40), "m:-1", "d:", "x:1", "m:12"])
            ),
            "errors": pick([{"code": pick(131049), "title": pick("Fehler")}]),
        }
        for i in range(rng.randint(0, 3))
    ]
    names = {m["from"]: pick("Anna") for m in messages if isinstance(m["from"], str)}
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4915100000000", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": v}, "wa_id": k} for k, v in names.items()],
        "messages": messages,
        "statuses": statuses,
    }
    change = {"field": "messages", "value": value}
    entry = {"id": WABA_ID, "time": int(time.time()), "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}, expected


async def test_fuzzed_webhooks_lose_nothing(number: Number, runtime: Runtime) -> None:
    """40 signed webhooks with nasty fields: every one answered 200, none left in the
    inbox, and every message that names a sender and an id stored (or dead-lettered).
    (Before items were cleaned and applied one by one: 28 of 80 webhooks stayed in the
    inbox for good on SQLite and 40 of 129 messages were lost; 37 and 52 on PostgreSQL.)"""
    rng = Random(20261201)
    fuzzed = [_fuzzed(rng, n) for n in range(40)]

    async def post(body: dict[str, Any]) -> int:
        raw = json.dumps(body).encode()  # NaN and lone surrogates as Python writes them
        response = await number.client.post(
            f"/webhooks/whatsapp/{number.id}",
            content=raw,
            headers={"X-Hub-Signature-256": sign(APP_SECRET, raw)},
        )
        return response.status_code

    answers = await asyncio.gather(*(post(body) for body, _ in fuzzed))
    assert set(answers) == {200}
    expected = [i for _, ids in fuzzed for i in ids]
    for _ in range(webhook_inbox.MAX_ATTEMPTS):  # what fails is tried again, then given up
        await number.app.state.ingestion.drain()
        left = await _pending(runtime)
        if not left:
            break
    async with runtime.db.read() as conn:
        stored = set((await conn.execute(select(messages.c.provider_message_id))).scalars())
    failed = (await number.failed(limit=500)).json()["items"]
    kept = {f["item"].get("provider_message_id") for f in failed}
    lost = [i for i in expected if clean_text(i) not in stored | kept]
    assert (left, len(lost)) == (0, 0), f"{left} webhooks left, {len(lost)}/{len(expected)} lost"
    assert failed == []  # all of it cleaned and applied, nothing even dead-lettered
