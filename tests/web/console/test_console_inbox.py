"""The console's inbox in-process: the list with its tabs and unread markers, the
thread with replies, notes, assignment and status, the WhatsApp window and template
picker, canned responses, the live fingerprints, and workspace isolation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from rundfunk.db.tables import channels, contacts, conversations, messages
from rundfunk.db.types import utcnow
from rundfunk.services import canned, inbox_views, templates
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime

QUESTION = "Hello, are you open on Sunday?"


async def _conversation(runtime: Runtime, phone: Any, tenant: Any, address: str) -> int:
    """A phone opts in and asks a question; returns the conversation's id."""
    await phone(tenant.channel_id, address, "START")
    body = await phone(tenant.channel_id, address, QUESTION)
    assert body["conversation_id"] is not None
    return int(body["conversation_id"])


async def _thread_texts(runtime: Runtime, conversation_id: int) -> list[tuple[str, str]]:
    async with runtime.db.read() as conn:
        rows = await conn.execute(
            select(messages.c.direction, messages.c.text)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id)
        )
        return [(r.direction, r.text) for r in rows]


async def test_an_empty_inbox_says_what_to_do(console: Any) -> None:
    agent = await console(Role.AGENT)
    page = await agent.get("/inbox")
    assert page.status_code == 200
    assert "No open conversations" in page.text and 'href="/simulator"' in page.text
    assert 'data-live-stream="/inbox/live"' in page.text
    mine = await agent.get("/inbox?view=mine")
    assert "Nothing is assigned to you" in mine.text
    assert (await agent.get("/inbox?view=nonsense")).status_code == 404


async def test_a_new_message_is_listed_unread_until_the_thread_is_opened(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    conversation_id = await _conversation(runtime, phone, tenant, "4915100001")
    listed = await agent.get("/inbox")
    assert QUESTION in listed.text and "4915100001" in listed.text
    assert "is-unread" in listed.text and "Unread:" in listed.text
    assert f'href="/inbox/{conversation_id}"' in listed.text
    fragment = await agent.get("/inbox/list?view=open")
    assert "<html" not in fragment.text and "is-unread" in fragment.text

    thread = await agent.get(f"/inbox/{conversation_id}")
    assert thread.status_code == 200 and QUESTION in thread.text
    assert 'class="msg msg-in"' in thread.text
    assert f'data-live-fragment="/inbox/{conversation_id}/messages"' in thread.text
    assert "is-unread" not in (await agent.get("/inbox")).text
    # Sandbox channels have no window unless configured: no indicator, the reply box shows.
    assert 'id="window-state"' not in thread.text and 'id="reply-form" method' in thread.text

    await phone(tenant.channel_id, "4915100001", "One more thing")
    again = await agent.get("/inbox")
    assert "is-unread" in again.text and "One more thing" in again.text


async def test_reply_note_assign_and_status_from_the_thread(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    conversation_id = await _conversation(runtime, phone, tenant, "4915100002")
    url = f"/inbox/{conversation_id}"

    sent = await agent.post(url + "/reply", {"text": "Yes, from 10 to 16."})
    assert sent.status_code == 303 and sent.headers["location"] == url
    note = await agent.post(url + "/note", {"note": "Regular customer, be nice"})
    assert note.status_code == 303
    assert await _thread_texts(runtime, conversation_id) == [
        ("in", QUESTION),
        ("out", "Yes, from 10 to 16."),
        ("note", "Regular customer, be nice"),
    ]
    thread = await agent.get(url)
    assert 'class="msg msg-note"' in thread.text and "Internal note" in thread.text
    assert 'class="msg msg-out"' in thread.text and "queued" in thread.text

    empty = await agent.post(url + "/reply", {"text": "   "})
    assert empty.status_code == 422 and 'id="e-text"' in empty.text
    assert "text must not be empty" in empty.text
    blank_note = await agent.post(url + "/note", {"note": ""})
    assert blank_note.status_code == 422 and 'id="e-note"' in blank_note.text

    address = "4915100002"
    me = agent.member.member_id
    assert (await agent.post(url + "/assign", {"member_id": str(me)})).status_code == 303
    mine = await agent.get("/inbox?view=mine")
    assert "Regular customer" not in mine.text  # notes are no preview
    assert "Yes, from 10 to 16." in mine.text and "You:" in mine.text
    assert address in (await agent.get("/inbox?view=mine")).text
    assert address not in (await agent.get("/inbox?view=unassigned")).text
    editor = tenant.member_ids[Role.EDITOR]
    assert (await agent.post(url + "/assign", {"member_id": str(editor)})).status_code == 303
    assert address not in (await agent.get("/inbox?view=mine")).text
    assert (await agent.post(url + "/assign", {"member_id": ""})).status_code == 303
    assert address in (await agent.get("/inbox?view=unassigned")).text

    assert (await agent.post(url + "/status", {"status": "pending"})).status_code == 303
    assert address in (await agent.get("/inbox?view=pending")).text
    assert address not in (await agent.get("/inbox")).text
    assert (await agent.post(url + "/status", {"status": "resolved"})).status_code == 303
    resolved = await agent.get("/inbox?view=resolved")
    assert address in resolved.text and 'id="tab-resolved"' in resolved.text
    assert (await agent.post(url + "/status", {"status": "sleeping"})).status_code == 422
    # The contact writes again: the conversation is open again.
    await phone(tenant.channel_id, "4915100002", "Hello?")
    assert "Hello?" in (await agent.get("/inbox")).text


async def test_another_workspaces_conversation_is_not_found(
    console: Any, runtime: Runtime, phone: Any, tenant: Any, make_tenant: Any
) -> None:
    conversation_id = await _conversation(runtime, phone, tenant, "4915100003")
    other = await console(Role.OWNER, of=await make_tenant("other"))
    url = f"/inbox/{conversation_id}"
    for path in (url, url + "/messages", url + "/live"):
        assert (await other.get(path)).status_code == 404, path
    for path, data in (
        (url + "/reply", {"text": "hi"}),
        (url + "/note", {"note": "hi"}),
        (url + "/assign", {"member_id": ""}),
        (url + "/status", {"status": "resolved"}),
    ):
        assert (await other.post(path, data)).status_code == 404, path
    assert QUESTION not in (await other.get("/inbox")).text
    assert await _thread_texts(runtime, conversation_id) == [("in", QUESTION)]
    # Nor can a member of another workspace be assigned here.
    agent = await console(Role.AGENT)
    foreign = other.member.member_id
    refused = await agent.post(url + "/assign", {"member_id": str(foreign)})
    assert refused.status_code == 422 and f"no member {foreign}" in refused.text


async def test_forms_need_the_session_and_its_csrf_token(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    conversation_id = await _conversation(runtime, phone, tenant, "4915100004")
    agent = await console(Role.AGENT)
    refused = await agent.post(f"/inbox/{conversation_id}/reply", {"text": "x"}, csrf=False)
    assert refused.status_code == 403
    assert (
        await agent.post("/inbox/canned", {"short_code": "a", "text": "b"}, csrf=False)
    ).status_code == 403
    assert await _thread_texts(runtime, conversation_id) == [("in", QUESTION)]
    anonymous = await agent.http.get("/inbox", headers={"accept": "text/html"})
    assert anonymous.status_code == 303 and "/login?next=/inbox" in anonymous.headers["location"]


async def test_the_live_fingerprints_move_with_the_inbox(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    actor = agent.member.actor
    before = await inbox_views.list_fingerprint(runtime.db, actor=actor)
    conversation_id = await _conversation(runtime, phone, tenant, "4915100005")
    listed = await inbox_views.list_fingerprint(runtime.db, actor=actor)
    assert listed != before
    thread = await inbox_views.thread_fingerprint(
        runtime.db, actor=actor, conversation_id=conversation_id
    )
    await agent.post(f"/inbox/{conversation_id}/status", {"status": "pending"})
    assert await inbox_views.list_fingerprint(runtime.db, actor=actor) != listed
    moved = await inbox_views.thread_fingerprint(
        runtime.db, actor=actor, conversation_id=conversation_id
    )
    assert moved != thread
    await agent.post(f"/inbox/{conversation_id}/reply", {"text": "On it"})
    replied = await inbox_views.thread_fingerprint(
        runtime.db, actor=actor, conversation_id=conversation_id
    )
    async with runtime.db.write() as conn:  # a delivery report moves the thread too
        await conn.execute(
            update(messages).where(messages.c.direction == "out").values(status="delivered")
        )
    assert (
        await inbox_views.thread_fingerprint(
            runtime.db, actor=actor, conversation_id=conversation_id
        )
        != replied
    )


async def test_a_window_closed_on_a_sandbox_channel_hides_the_reply_box(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    conversation_id = await _conversation(runtime, phone, tenant, "4915100006")
    async with runtime.db.write() as conn:
        await conn.execute(
            update(channels)
            .where(channels.c.id == tenant.channel_id)
            .values(settings={"service_window_hours": 2})
        )
    open_page = await agent.get(f"/inbox/{conversation_id}")
    assert "2-hour window open until" in open_page.text
    three_hours_ago = utcnow() - timedelta(hours=3)
    async with runtime.db.write() as conn:
        await conn.execute(update(conversations).values(last_inbound_at=three_hours_ago))
        await conn.execute(update(contacts).values(last_inbound_at=three_hours_ago))
    closed = await agent.get(f"/inbox/{conversation_id}")
    assert "2-hour window closed since" in closed.text
    assert (
        f'id="reply-form" method="post" action="/inbox/{conversation_id}/reply" hidden'
        in closed.text
    )
    assert "you can answer once the contact writes again" in closed.text
    refused = await agent.post(f"/inbox/{conversation_id}/reply", {"text": "Late answer"})
    assert refused.status_code == 422 and "2-hour window is closed" in refused.text


@pytest.fixture
async def whatsapp(runtime: Runtime, tenant: Any) -> int:
    """A WhatsApp conversation whose contact last wrote 30 hours ago; one approved template."""
    now = utcnow()
    written = now - timedelta(hours=30)
    async with runtime.db.write() as conn:
        channel_id = int(
            (await conn.execute(channels.insert().values(
                workspace_id=tenant.workspace_id, kind="whatsapp", name="Newsroom",
                settings={}, status="active", created_at=now,
            ))).inserted_primary_key[0]  # type: ignore[index]
        )  # fmt: skip
        contact_id = int(
            (await conn.execute(contacts.insert().values(
                workspace_id=tenant.workspace_id, channel_id=channel_id, address="491700001",
                name="Jo", attributes={}, tags=[], status="subscribed", blocked=False,
                last_inbound_at=written, created_at=now, updated_at=now,
            ))).inserted_primary_key[0]  # type: ignore[index]
        )  # fmt: skip
        conversation_id = int(
            (await conn.execute(conversations.insert().values(
                workspace_id=tenant.workspace_id, channel_id=channel_id, contact_id=contact_id,
                status="open", last_inbound_at=written, last_message_at=written, created_at=written,
            ))).inserted_primary_key[0]  # type: ignore[index]
        )  # fmt: skip
    body = {"type": "BODY", "text": "Hallo {{1}}, wir melden uns zu {{2}}."}
    await templates.store_synced(
        runtime.db, workspace_id=tenant.workspace_id, channel_id=channel_id,
        found=[
            {"name": "follow_up", "language": "de", "status": "APPROVED", "components": [body]},
            {"name": "paused_one", "language": "de", "status": "PAUSED", "components": [body]},
        ],
    )  # fmt: skip
    return conversation_id


async def test_whatsapp_outside_the_window_offers_approved_templates(
    console: Any, runtime: Runtime, whatsapp: int
) -> None:
    agent = await console(Role.AGENT)
    url = f"/inbox/{whatsapp}"
    page = await agent.get(url)
    assert "24-hour window closed since" in page.text
    assert f'id="template-form" method="post" action="{url}/template">' in page.text
    assert 'value="follow_up|de"' in page.text and "paused_one" not in page.text
    assert 'data-body="Hallo {{1}}, wir melden uns zu {{2}}."' in page.text
    free = await agent.post(url + "/reply", {"text": "Hi Jo"})
    assert free.status_code == 422 and "24-hour window is closed" in free.text
    none = await agent.post(url + "/template", {"template": ""})
    assert none.status_code == 422 and 'id="e-template"' in none.text
    short = await agent.post(
        url + "/template", {"template": "follow_up|de", "body_parameters": "Jo"}
    )
    assert short.status_code == 422 and "needs 2 parameter(s), got 1" in short.text
    assert 'value="follow_up|de" data-body' in short.text  # the choice is kept
    sent = await agent.post(
        url + "/template",
        {"template": "follow_up|de", "body_parameters": "{{ contact.name }}\nIhrer Bestellung"},
    )
    assert sent.status_code == 303
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(messages.c.kind, messages.c.payload).where(
            messages.c.conversation_id == whatsapp
        ))).one()  # fmt: skip
    assert row.kind == "template" and row.payload["template"]["name"] == "follow_up"


async def test_whatsapp_inside_the_window_shows_until_when(
    console: Any, runtime: Runtime, whatsapp: int
) -> None:
    recently = utcnow() - timedelta(hours=1)
    async with runtime.db.write() as conn:
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == whatsapp)
            .values(last_inbound_at=recently)
        )
    page = await (await console(Role.AGENT)).get(f"/inbox/{whatsapp}")
    assert "24-hour window open until" in page.text
    assert f'action="/inbox/{whatsapp}/template" hidden' in page.text


async def test_canned_responses_are_managed_and_used_by_agents(
    console: Any, runtime: Runtime, phone: Any, tenant: Any, make_tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    empty = await agent.get("/inbox/canned")
    assert empty.status_code == 200 and "No canned responses yet" in empty.text
    created = await agent.post("/inbox/canned", {"short_code": "/Hours", "text": "Mo-Fr 9-17"})
    assert created.status_code == 303
    [item] = await canned.list_canned(runtime.db, actor=agent.member.actor)
    assert item["short_code"] == "hours"
    listed = await agent.get("/inbox/canned")
    assert "/hours" in listed.text and "Mo-Fr 9-17" in listed.text

    taken = await agent.post("/inbox/canned", {"short_code": "hours", "text": "again"})
    assert taken.status_code == 422 and 'id="e-short_code"' in taken.text
    assert "taken already" in taken.text and 'value="hours"' in taken.text
    bad = await agent.post("/inbox/canned", {"short_code": "two words", "text": ""})
    assert bad.status_code == 422 and "letters a-z" in bad.text

    edit = f"/inbox/canned/{item['id']}"
    assert "Mo-Fr 9-17" in (await agent.get(edit)).text
    saved = await agent.post(edit, {"short_code": "hours", "text": "Mo-Sa 9-18"})
    assert saved.status_code == 303
    no_text = await agent.post(edit, {"short_code": "hours", "text": ""})
    assert no_text.status_code == 422 and 'id="e-text"' in no_text.text

    conversation_id = await _conversation(runtime, phone, tenant, "4915100007")
    thread = await agent.get(f"/inbox/{conversation_id}")
    assert 'data-code="hours" data-text="Mo-Sa 9-18"' in thread.text
    # Without script the picker sends its id; its text becomes the reply.
    used = await agent.post(
        f"/inbox/{conversation_id}/reply", {"text": "", "canned_id": str(item["id"])}
    )
    assert used.status_code == 303
    assert ("out", "Mo-Sa 9-18") in await _thread_texts(runtime, conversation_id)

    other = await console(Role.OWNER, of=await make_tenant("other"))
    assert (await other.get(edit)).status_code == 404
    assert (await other.post(edit + "/delete")).status_code == 404
    assert "Mo-Sa" not in (await other.get("/inbox/canned")).text

    deleted = await agent.post(edit + "/delete")
    assert deleted.status_code == 303
    assert await canned.list_canned(runtime.db, actor=agent.member.actor) == []


async def test_the_inbox_speaks_german(
    console: Any, runtime: Runtime, phone: Any, tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    await agent.post("/account/language", {"locale": "de"})
    assert "Keine offenen Unterhaltungen" in (await agent.get("/inbox")).text
    conversation_id = await _conversation(runtime, phone, tenant, "4915100008")
    await agent.post(f"/inbox/{conversation_id}/note", {"note": "intern"})
    thread = await agent.get(f"/inbox/{conversation_id}")
    assert "Interne Notiz" in thread.text and "Antwort senden" in thread.text
