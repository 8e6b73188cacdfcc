"""The private 1:1 conversation: a subscriber's question reaches the team inbox and
nobody else; the agent's answer reaches that one phone; assign, resolve, reopen."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_support import Phones, addresses, async_wait_until, copies, create_channel, tag

pytestmark = pytest.mark.e2e


async def test_question_becomes_private_conversation_and_answer_reaches_only_that_phone(
    server: Any,
) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e inbox")
        phones = Phones(client, channel_id)
        people = addresses("07", 6)
        asker, others = people[0], people[1:]
        await phones.write_many([(a, "START") for a in people])

        # Let the welcome confirmations land first, so later counts are stable.
        async def welcomed() -> bool:
            boxes = await phones.inboxes(people)
            return all(len(box) == 1 for box in boxes.values())

        await async_wait_until(welcomed, timeout=20, interval=0.1, message="welcomes")
        before = _received(await phones.inboxes(people))

        question = f"Meine Frage {tag()}: wann kommt der nächste Zug?"
        wrote = await phones.write(asker, question)
        assert wrote["action"] == "conversation", wrote
        assert wrote["conversation_id"], wrote

        async def open_conversation() -> dict[str, Any] | None:
            response = await client.get(
                "/api/v1/conversations", params={"status": "open", "limit": 500}
            )
            assert response.status_code == 200, response.text
            mine = [c for c in response.json()["items"] if c["channel_id"] == channel_id]
            return mine[0] if mine else None

        conversation = await async_wait_until(
            open_conversation, timeout=10, message="an open conversation"
        )
        conversation_id = conversation["id"]
        assert conversation_id == wrote["conversation_id"]
        assert conversation["contact_address"] == asker, conversation
        assert conversation["status"] == "open", conversation
        detail = await client.get(f"/api/v1/conversations/{conversation_id}")
        assert detail.status_code == 200, detail.text
        contact_id = detail.json()["contact_id"]
        contact = await client.get(f"/api/v1/contacts/{contact_id}")
        assert contact.json()["address"] == asker, contact.json()

        messages = (await client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
        inbound = [m for m in messages["items"] if m["direction"] == "in"]
        assert question in [m["text"] for m in inbound], messages

        answer = f"Unsere Antwort {tag()}"
        replied = await client.post(
            f"/api/v1/conversations/{conversation_id}/messages", json={"text": answer}
        )
        assert replied.status_code == 201, replied.text
        assert replied.json()["direction"] == "out", replied.json()

        async def answered() -> list[dict[str, Any]]:
            return copies(await phones.inbox(asker), answer)

        got = await async_wait_until(answered, timeout=15, message="the answer on the phone")
        assert len(got) == 1, got
        await asyncio.sleep(0.5)  # anything else the dispatcher had in that chunk lands too
        after = await phones.inboxes(people)
        seen = _received(after)
        assert len(copies(after[asker], answer)) == 1, after[asker]
        for address in people:
            assert not copies(after[address], question), (address, after[address])
        for address in others:
            assert seen[address] == before[address], (address, after[address])
            assert not copies(after[address], answer), (address, after[address])

        async def out_sent() -> list[dict[str, Any]]:
            items = (await client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
            return [
                m
                for m in items["items"]
                if m["direction"] == "out"
                and m["text"] == answer
                and m["status"] in {"sent", "delivered", "read"}
            ]

        await async_wait_until(out_sent, timeout=10, message="the reply marked sent")

        members = await client.get("/api/v1/members")
        assert members.status_code == 200, members.text
        member_id = members.json()["items"][0]["id"]
        assigned = await client.post(
            f"/api/v1/conversations/{conversation_id}/assign", json={"member_id": member_id}
        )
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["assignee_id"] == member_id, assigned.json()

        resolved = await client.post(f"/api/v1/conversations/{conversation_id}/resolve")
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved", resolved.json()
        assert await open_conversation() is None
        shown = await client.get(f"/api/v1/conversations/{conversation_id}")
        assert shown.json()["status"] == "resolved" and shown.json()["assignee_id"] == member_id

        again = f"Noch eine Frage {tag()}"
        wrote_again = await phones.write(asker, again)
        assert wrote_again["conversation_id"] == conversation_id, wrote_again
        reopened = await async_wait_until(open_conversation, timeout=10, message="reopened")
        assert reopened["id"] == conversation_id, reopened
        items = (await client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
        assert again in [m["text"] for m in items["items"] if m["direction"] == "in"], items

        final = await phones.inboxes(people)
        for address in people:
            assert not copies(final[address], again), (address, final[address])
        for address in others:
            assert _received({address: final[address]})[address] == before[address], final[address]


def _received(boxes: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[int, str]]]:
    """What each phone holds, without the status that moves on (sent → delivered → read)."""
    return {a: [(m["id"], m["text"]) for m in box] for a, box in boxes.items()}


async def test_help_keyword_answers_and_keywords_inside_sentences_are_chat(server: Any) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e help")
        phones = Phones(client, channel_id)
        helper, chatter = addresses("14", 2)
        for address, word in ((helper, "HILFE"), (chatter, "HELP")):
            result = await phones.write(address, word)
            assert result["action"] == "help" and result["conversation_id"] is None, result

        async def helped() -> bool:
            boxes = await phones.inboxes([helper, chatter])
            return all(len(box) == 1 for box in boxes.values())

        await async_wait_until(helped, timeout=10, message="help texts")
        boxes = await phones.inboxes([helper, chatter])
        for box in boxes.values():
            assert "START" in box[0]["text"] and "STOP" in box[0]["text"], box

        sentence = f"Bitte nicht stop sagen {tag()}"
        result = await phones.write(chatter, sentence)
        assert result["action"] == "conversation", result
        contact = (await client.get(f"/api/v1/contacts/{result['contact_id']}")).json()
        assert contact["status"] != "unsubscribed" and contact["consent_history"] == [], contact
        listed = (
            await client.get("/api/v1/conversations", params={"status": "open", "limit": 500})
        ).json()["items"]
        mine = [c for c in listed if c["channel_id"] == channel_id]
        assert [c["contact_address"] for c in mine] == [chatter], mine
