"""Blocking a contact through the API: no broadcast, no reply, nothing in the inbox; what
they write is kept on the contact and counted; START does not subscribe them."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import REGISTRY

from rundfunk.services.actors import Role


def blocked_counter() -> float:
    value = REGISTRY.get_sample_value(
        "rundfunk_blocked_messages_total", {"channel_kind": "sandbox"}
    )
    return value or 0.0


async def _block(client: httpx.AsyncClient, tenant, contact_id: int, verb: str = "block") -> Any:
    response = await client.post(
        f"/api/v1/contacts/{contact_id}/{verb}", headers=tenant.auth(Role.AGENT)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_blocked_troll_stays_out_of_the_inbox_and_is_counted(
    client: httpx.AsyncClient, tenant, phone
) -> None:
    auth = tenant.auth(Role.AGENT)
    first = await phone(tenant.channel_id, "4915100000066", "you are all idiots")
    conversation_id = first["conversation_id"]
    state = await _block(client, tenant, first["contact_id"])
    assert state["blocked"] is True and state["blocked_at"] is not None
    assert state["blocked_messages"] == 0
    # Their conversation left the open inbox at once.
    listed = (await client.get("/api/v1/conversations?status=open", headers=auth)).json()
    assert conversation_id not in {c["id"] for c in listed["items"]}

    before = blocked_counter()
    flood = [f"spam {n}" for n in range(5)]
    for text in flood:
        result = await phone(tenant.channel_id, "4915100000066", text)
        assert result["action"] == "ignore"
        assert result["conversation_id"] is None
    assert blocked_counter() == before + 5

    # Nothing new in the conversation, and it was not reopened.
    messages = (
        await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=auth)
    ).json()["items"]
    assert [m["text"] for m in messages] == ["you are all idiots"]
    shown = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=auth)).json()
    assert shown["status"] == "resolved"
    # Kept on the contact instead, newest first, and counted there.
    kept = (
        await client.get(f"/api/v1/contacts/{first['contact_id']}/blocked-messages", headers=auth)
    ).json()
    assert kept["total"] == 5 and [m["text"] for m in kept["items"]] == flood[::-1]
    contact = (await client.get(f"/api/v1/contacts/{first['contact_id']}", headers=auth)).json()
    assert contact["blocked"] is True and contact["blocked_messages"] == 5


async def test_a_blocked_contact_who_never_wrote_before_opens_no_conversation(
    client: httpx.AsyncClient, tenant, phone
) -> None:
    auth = tenant.auth(Role.AGENT)
    joined = await phone(tenant.channel_id, "4917", "START")
    await _block(client, tenant, joined["contact_id"])
    result = await phone(tenant.channel_id, "4917", "hello?")
    assert result["action"] == "ignore" and result["conversation_id"] is None
    listed = (await client.get("/api/v1/conversations", headers=auth)).json()["items"]
    assert joined["contact_id"] not in {c["contact_id"] for c in listed}


async def test_start_from_a_blocked_contact_does_not_subscribe_them(
    client: httpx.AsyncClient, tenant, phone
) -> None:
    first = await phone(tenant.channel_id, "4918", "hi")
    await _block(client, tenant, first["contact_id"])
    for keyword in ("START", "ANMELDEN", "/start", "HILFE"):
        assert (await phone(tenant.channel_id, "4918", keyword))["action"] == "ignore"
    contact = (
        await client.get(f"/api/v1/contacts/{first['contact_id']}", headers=tenant.auth())
    ).json()
    assert contact["status"] == "none" and contact["consent_history"] == []
    assert contact["blocked_messages"] == 4


async def test_a_blocked_subscriber_gets_no_broadcast_and_no_reply(
    client: httpx.AsyncClient, tenant, phone, assert_error
) -> None:
    for address in ("4901", "4902"):
        await phone(tenant.channel_id, address, "START")
    chat = await phone(tenant.channel_id, "4902", "question")
    reply_url = f"/api/v1/conversations/{chat['conversation_id']}/messages"
    queued = await client.post(reply_url, json={"text": "one moment"}, headers=tenant.auth())
    assert queued.status_code == 201, queued.text
    await _block(client, tenant, chat["contact_id"])

    # The reply queued before the block is not sent; a new one is refused clearly.
    messages = (await client.get(reply_url, headers=tenant.auth())).json()["items"]
    assert [(m["text"], m["status"]) for m in messages if m["direction"] == "out"] == [
        ("one moment", "failed")
    ]
    refused = await client.post(reply_url, json={"text": "hello?"}, headers=tenant.auth())
    assert_error(refused, 409, "conflict", "blocked", "unblock")

    draft = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": "News"},
        headers=tenant.auth(Role.EDITOR),
    )
    assert draft.status_code == 201, draft.text
    sent = await client.post(
        f"/api/v1/broadcasts/{draft.json()['id']}/send", headers=tenant.auth(Role.EDITOR)
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["stats"]["total"] == 1  # 4901 only


async def test_unblocking_lets_them_back_in_and_both_are_audited(
    client: httpx.AsyncClient, tenant, phone
) -> None:
    first = await phone(tenant.channel_id, "4919", "hi")
    contact_id = first["contact_id"]
    await _block(client, tenant, contact_id)
    again = await _block(client, tenant, contact_id)  # blocking twice changes nothing
    assert again["blocked"] is True
    await phone(tenant.channel_id, "4919", "still here")
    state = await _block(client, tenant, contact_id, "unblock")
    assert state == {
        "id": contact_id, "blocked": False, "blocked_at": None, "blocked_messages": 1
    }  # fmt: skip
    back = await phone(tenant.channel_id, "4919", "sorry")
    assert back["action"] == "conversation" and back["conversation_id"] is not None
    assert (await phone(tenant.channel_id, "4919", "START"))["action"] == "opt_in"

    audit = (await client.get("/api/v1/audit", headers=tenant.auth(Role.ADMIN))).json()["items"]
    entries = [
        (e["action"], e["target_id"], e["actor"]) for e in audit if e["target_type"] == "contact"
    ]
    assert [action for action, _, _ in entries] == ["contact.block", "contact.unblock"]
    assert all(target == contact_id for _, target, _ in entries)
    assert all(actor.startswith("token:") for _, _, actor in entries)


async def test_agents_and_up_block_but_another_workspace_cannot(
    client: httpx.AsyncClient, tenant, make_tenant, phone, assert_error
) -> None:
    first = await phone(tenant.channel_id, "4920", "hi")
    other = await make_tenant("rival")
    for verb in ("block", "unblock"):
        response = await client.post(
            f"/api/v1/contacts/{first['contact_id']}/{verb}", headers=other.auth()
        )
        assert_error(response, 404, "not_found", "contact")
    peek = await client.get(
        f"/api/v1/contacts/{first['contact_id']}/blocked-messages", headers=other.auth()
    )
    assert_error(peek, 404, "not_found")
    contact = (
        await client.get(f"/api/v1/contacts/{first['contact_id']}", headers=tenant.auth())
    ).json()
    assert contact["blocked"] is False
    # No token, no block.
    anonymous = await client.post(f"/api/v1/contacts/{first['contact_id']}/block")
    assert anonymous.status_code == 401
    assert_error(
        await client.post("/api/v1/contacts/9223372036854775808/block", headers=tenant.auth()),
        422,
        "invalid",
    )
