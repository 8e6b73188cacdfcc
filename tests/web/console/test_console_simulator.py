"""The phone simulator page: phones on the workspace's sandbox channel, writing through
the inbound rules, both sides of each thread, per-phone fingerprints for the live
stream, refusals, and another workspace's channel staying out of reach."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import insert, select, update

from rundfunk.db.tables import contacts, conversations, sandbox_messages
from rundfunk.db.types import utcnow
from rundfunk.services import sandbox
from rundfunk.services.actors import Role
from rundfunk.web.ui.session import SESSION_COOKIE
from rundfunk.worker.runtime import Runtime

PHONE_1 = "4915100000001"
SCRIPT = {"accept": "*/*"}  # what simulator.js's fetch sends


async def script_post(c: Any, path: str, data: dict[str, Any]) -> Any:
    """A POST as simulator.js makes it: CSRF in the header, no HTML wanted."""
    headers = {"cookie": f"{SESSION_COOKIE}={c.token}", "x-csrf-token": c.csrf, **SCRIPT}
    return await c.http.post(path, data=data, headers=headers)


async def _received(runtime: Runtime, channel_id: int, address: str, text: str) -> None:
    """The business's message reaches the phone, as the dispatcher would put it there."""
    async with runtime.db.write() as conn:
        await conn.execute(
            insert(sandbox_messages).values(
                channel_id=channel_id,
                address=address,
                provider_message_id=f"sbx-test-{text}",
                text=text,
                status="sent",
                received_at=utcnow(),
            )
        )


async def _status(runtime: Runtime, channel_id: int, address: str) -> str | None:
    async with runtime.db.read() as conn:
        return await conn.scalar(
            select(contacts.c.status).where(
                contacts.c.channel_id == channel_id, contacts.c.address == address
            )
        )


async def test_the_page_shows_three_phones_and_what_to_try(console: Any, tenant: Any) -> None:
    agent = await console(Role.AGENT)
    page = await agent.get("/simulator")
    assert page.status_code == 200, page.text
    html = page.text
    for n in (1, 2, 3):
        assert f'id="phone-{n}-text"' in html and f'id="phone-{n}-send"' in html
        assert f'id="phone-{n}-messages"' in html
    assert 'id="phone-4"' not in html
    assert "+49 151 00000001" in html and f'data-address="{PHONE_1}"' in html
    assert "Type START to subscribe, STOP to leave, HELP" in html
    assert f"/simulator/stream?channel={tenant.channel_id}&amp;phone={PHONE_1}" in html
    assert '<script src="/static/simulator.js' in html and "<script>" not in html
    assert f'href="/simulator?channel={tenant.channel_id}&amp;phones=4"' in html
    assert 'id="channel-pick"' not in html  # one sandbox channel: nothing to choose
    five = (await agent.get("/simulator?phones=5")).text
    assert 'id="phone-5"' in five and 'id="phone-6"' not in five
    assert 'id="phone-8"' in (await agent.get("/simulator?phones=99")).text
    assert 'id="phone-4"' not in (await agent.get("/simulator?phones=many")).text


async def test_a_phone_writes_start_and_sees_both_sides(
    console: Any, tenant: Any, runtime: Runtime
) -> None:
    agent = await console(Role.AGENT)
    url = f"/simulator/phones/{PHONE_1}/messages"
    sent = await script_post(agent, url, {"channel": tenant.channel_id, "text": "START"})
    assert sent.status_code == 200, sent.text
    assert re.search(r'class="msg mine"[^>]*>.*?START', sent.text, re.S)
    assert await _status(runtime, tenant.channel_id, PHONE_1) == "subscribed"
    await _received(runtime, tenant.channel_id, PHONE_1, "Welcome <b>aboard</b>")
    thread = await agent.get(f"/simulator/thread?channel={tenant.channel_id}&phone={PHONE_1}")
    assert thread.status_code == 200
    mine, theirs = thread.text.index("START"), thread.text.index("Welcome &lt;b&gt;aboard")
    assert mine < theirs and 'class="msg theirs"' in thread.text
    page = (await agent.get("/simulator")).text
    assert "Welcome &lt;b&gt;aboard" in page
    plain = await agent.post(url, {"channel": tenant.channel_id, "text": "STOP", "phones": "4"})
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/simulator?channel={tenant.channel_id}&phones=4"
    assert await _status(runtime, tenant.channel_id, PHONE_1) == "unsubscribed"


async def test_a_question_is_read_once_a_member_opened_it(
    console: Any, tenant: Any, runtime: Runtime
) -> None:
    agent = await console(Role.AGENT)
    url = f"/simulator/phones/{PHONE_1}/messages"
    await script_post(agent, url, {"channel": tenant.channel_id, "text": "Is it open?"})
    thread_url = f"/simulator/thread?channel={tenant.channel_id}&phone={PHONE_1}"
    assert 'class="ticks delivered"' in (await agent.get(thread_url)).text
    async with runtime.db.write() as conn:
        await conn.execute(update(conversations).values(agent_last_seen_at=utcnow()))
    assert 'class="ticks read"' in (await agent.get(thread_url)).text


async def test_an_empty_message_is_refused_next_to_the_phone(console: Any, tenant: Any) -> None:
    agent = await console(Role.AGENT)
    url = f"/simulator/phones/{PHONE_1}/messages"
    scripted = await script_post(agent, url, {"channel": tenant.channel_id, "text": " "})
    assert scripted.status_code == 422 and scripted.text == "Type a message first."
    plain = await agent.post(url, {"channel": tenant.channel_id, "text": ""})
    assert plain.status_code == 422
    assert re.search(r'id="phone-1-error" role="alert">Type a message first\.<', plain.text)
    assert 'aria-invalid="true" aria-describedby="phone-1-error"' in plain.text
    assert (await agent.post("/simulator/phones/4%2F1/messages", {"text": "x"})).status_code == 404


async def test_fingerprints_move_with_each_side(
    console: Any, tenant: Any, runtime: Runtime
) -> None:
    agent = await console(Role.AGENT)
    actor = agent.member.actor

    async def prints() -> dict[str, list[Any]]:
        return await sandbox.phones_fingerprint(
            runtime.db, actor=actor, channel_id=tenant.channel_id, addresses=[PHONE_1, "other"]
        )

    empty = await prints()
    assert empty == {PHONE_1: [0, 0, 0, None, None], "other": [0, 0, 0, None, None]}
    url = f"/simulator/phones/{PHONE_1}/messages"
    await script_post(agent, url, {"channel": tenant.channel_id, "text": "hi"})
    wrote = await prints()
    assert wrote[PHONE_1][3] is not None and wrote["other"] == empty["other"]
    await script_post(agent, url, {"channel": tenant.channel_id, "text": "hello again"})
    assert (await prints())[PHONE_1][3] != wrote[PHONE_1][3]
    await _received(runtime, tenant.channel_id, PHONE_1, "Hello!")
    got = await prints()
    assert got[PHONE_1][0] > 0 and got[PHONE_1][1:3] == [0, 0]
    async with runtime.db.write() as conn:
        await conn.execute(update(sandbox_messages).values(status="read"))
    assert (await prints())[PHONE_1][1:3] == [0, 1]
    async with runtime.db.write() as conn:
        await conn.execute(update(conversations).values(agent_last_seen_at=utcnow()))
    assert (await prints())[PHONE_1][4] is not None


async def test_another_workspaces_channel_is_out_of_reach(
    console: Any, make_tenant: Any, tenant: Any, runtime: Runtime
) -> None:
    other = await make_tenant("other")
    owner = await console(Role.OWNER)
    foreign = other.channel_id
    assert (await owner.get(f"/simulator?channel={foreign}")).status_code == 404
    thread = await owner.get(f"/simulator/thread?channel={foreign}&phone={PHONE_1}")
    assert thread.status_code == 404
    stream = await owner.get(f"/simulator/stream?channel={foreign}&phone={PHONE_1}")
    assert stream.status_code == 404
    url = f"/simulator/phones/{PHONE_1}/messages"
    wrote = await script_post(owner, url, {"channel": foreign, "text": "START"})
    assert wrote.status_code == 404
    assert await _status(runtime, foreign, PHONE_1) is None
    refused = await owner.post(url, {"channel": tenant.channel_id, "text": "START"}, csrf=False)
    assert refused.status_code == 403
    assert await _status(runtime, tenant.channel_id, PHONE_1) is None


async def test_several_sandbox_channels_offer_a_choice(
    console: Any, client: Any, tenant: Any
) -> None:
    second = await client.post(
        "/api/v1/channels",
        json={"kind": "sandbox", "name": "Second sandbox"},
        headers=tenant.auth(),
    )
    second_id = second.json()["id"]
    agent = await console(Role.AGENT)
    html = (await agent.get(f"/simulator?channel={second_id}")).text
    assert 'id="channel-pick"' in html and "Second sandbox" in html
    assert f'<option value="{second_id}" selected>' in html
    assert f"/simulator/thread?channel={second_id}&amp;phone={PHONE_1}" in html


async def test_the_simulator_speaks_german(console: Any) -> None:
    agent = await console(Role.AGENT)
    assert (await agent.post("/account/language", {"locale": "de"})).status_code == 303
    html = (await agent.get("/simulator")).text
    assert "Telefon 1" in html and "Telefon hinzufügen" in html


async def test_signed_out_visitors_get_nothing(client: Any, tenant: Any) -> None:
    html = {"accept": "text/html"}
    for path in ("/simulator", f"/simulator/stream?channel={tenant.channel_id}&phone=1"):
        answer = await client.get(path, headers=html)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    wrote = await client.post(
        f"/simulator/phones/{PHONE_1}/messages", data={"channel": tenant.channel_id, "text": "x"}
    )
    assert wrote.status_code == 401
