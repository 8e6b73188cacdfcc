"""The inbound rules carried out by ``services.inbound.receive`` on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from rundfunk.channels.base import InboundMessage
from rundfunk.core.keywords import InboundAction
from rundfunk.db.tables import consent_events, contacts, conversations, messages, subscriptions
from rundfunk.services import inbound, inbox
from service_world import World


async def _contact(world: World, contact_id: int) -> dict[str, object]:
    rows = await world.rows(select(contacts).where(contacts.c.id == contact_id))
    return dict(rows[0]._mapping)


async def _consent(world: World, contact_id: int) -> list[dict[str, object]]:
    rows = await world.rows(
        select(consent_events)
        .where(consent_events.c.contact_id == contact_id)
        .order_by(consent_events.c.id)
    )
    return [dict(r._mapping) for r in rows]


async def _outbound(world: World, contact_id: int) -> list[str]:
    rows = await world.rows(
        select(messages.c.text)
        .where(messages.c.contact_id == contact_id, messages.c.direction == "out")
        .order_by(messages.c.id)
    )
    return [r.text for r in rows]


async def _topics_of(world: World, contact_id: int) -> set[int]:
    rows = await world.rows(
        select(subscriptions.c.topic_id).where(subscriptions.c.contact_id == contact_id)
    )
    return {r.topic_id for r in rows}


async def _conversation_count(world: World) -> int:
    return len(await world.rows(select(conversations.c.id)))


@pytest.mark.parametrize("text", ["START", "ANMELDEN", "start!", "  Anmelden 🙂"])
async def test_opt_in_keyword_subscribes_and_records_consent(world: World, text: str) -> None:
    outcome = await world.write("+491", text)

    assert outcome.action is InboundAction.OPT_IN
    assert outcome.conversation_id is None
    assert (await _contact(world, outcome.contact_id))["status"] == "subscribed"
    [event] = await _consent(world, outcome.contact_id)
    assert event["kind"] == "opt_in"
    assert event["source"] == "keyword"
    assert event["actor"] == "contact"
    assert event["keyword"] == text  # what the person wrote, as written
    [confirmation] = await _outbound(world, outcome.contact_id)
    assert event["text_shown"] == confirmation  # the consent record shows what we answered
    assert "Welcome to Acme" in confirmation
    assert await _conversation_count(world) == 0  # keyword traffic opens no conversation


async def test_start_with_topic_subscribes_to_that_topic(world: World) -> None:
    sport = await world.add_topic("sport", "Sport")
    await world.add_topic("news", "News")

    outcome = await world.write("+491", "START sport")

    assert (await _contact(world, outcome.contact_id))["status"] == "subscribed"
    assert await _topics_of(world, outcome.contact_id) == {sport}
    [event] = await _consent(world, outcome.contact_id)
    assert event["topic_id"] == sport
    assert event["keyword"] == "START sport"
    assert "Topic: Sport" in str(event["text_shown"])


async def test_start_with_unknown_topic_subscribes_to_everything_and_says_so(
    world: World,
) -> None:
    outcome = await world.write("+491", "START chess")

    assert (await _contact(world, outcome.contact_id))["status"] == "subscribed"
    assert await _topics_of(world, outcome.contact_id) == set()
    [event] = await _consent(world, outcome.contact_id)
    assert event["topic_id"] is None
    assert "no topic 'chess'" in str(event["text_shown"])


async def test_stop_unsubscribes_from_everything(world: World) -> None:
    await world.add_topic("sport")
    contact_id = await world.subscriber("+491", topic="sport")

    outcome = await world.write("+491", "STOP")

    assert outcome.action is InboundAction.OPT_OUT
    assert (await _contact(world, contact_id))["status"] == "unsubscribed"
    assert await _topics_of(world, contact_id) == set()
    opt_in, opt_out = await _consent(world, contact_id)
    assert (opt_in["kind"], opt_out["kind"]) == ("opt_in", "opt_out")
    assert opt_out["keyword"] == "STOP"
    assert opt_out["topic_id"] is None
    assert opt_out["text_shown"] == (await _outbound(world, contact_id))[-1]
    assert "unsubscribed from Acme" in str(opt_out["text_shown"])


async def test_stop_with_topic_leaves_only_that_topic(world: World) -> None:
    sport = await world.add_topic("sport", "Sport")
    news = await world.add_topic("news", "News")
    contact_id = await world.subscriber("+491", topic="sport")
    await world.write("+491", "START news")

    await world.write("+491", "STOP sport")

    assert (await _contact(world, contact_id))["status"] == "subscribed"
    assert await _topics_of(world, contact_id) == {news}
    event = (await _consent(world, contact_id))[-1]
    assert (event["kind"], event["topic_id"], event["keyword"]) == ("opt_out", sport, "STOP sport")
    assert "no more news about Sport" in str(event["text_shown"])


async def test_help_answers_and_changes_nothing(world: World) -> None:
    outcome = await world.write("+491", "HELP")

    assert outcome.action is InboundAction.HELP
    assert (await _contact(world, outcome.contact_id))["status"] == "none"
    assert await _consent(world, outcome.contact_id) == []
    [answer] = await _outbound(world, outcome.contact_id)
    assert "send START to subscribe" in answer
    assert await _conversation_count(world) == 0


async def test_other_text_opens_a_conversation_and_answers_nothing(world: World) -> None:
    outcome = await world.write("+491", "please don't stop the news", name="Anna")

    assert outcome.action is InboundAction.CONVERSATION
    assert outcome.conversation_id is not None
    contact = await _contact(world, outcome.contact_id)
    assert (contact["status"], contact["name"]) == ("none", "Anna")
    assert await _consent(world, outcome.contact_id) == []
    assert await _outbound(world, outcome.contact_id) == []
    conversation = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=outcome.conversation_id
    )
    assert conversation["status"] == "open"
    [message] = await inbox.list_messages(
        world.db, actor=world.owner, conversation_id=outcome.conversation_id
    )
    assert (message["direction"], message["text"]) == ("in", "please don't stop the news")


async def test_the_same_provider_message_is_stored_once(world: World) -> None:
    event = InboundMessage(
        address="+491",
        provider_message_id="wamid.SAME",
        timestamp=datetime.now(UTC),
        text="START",
    )

    first = await inbound.receive(world.db, channel_id=world.channel_id, event=event)
    second = await inbound.receive(world.db, channel_id=world.channel_id, event=event)

    assert not first.duplicate and second.duplicate
    assert second.message_id == first.message_id
    stored = await world.rows(
        select(messages.c.id).where(messages.c.provider_message_id == "wamid.SAME")
    )
    assert len(stored) == 1
    # The retried webhook did not subscribe twice nor confirm twice.
    assert len(await _consent(world, first.contact_id)) == 1
    assert len(await _outbound(world, first.contact_id)) == 1


async def test_provider_ids_are_unique_per_channel_not_globally(world: World) -> None:
    other = await world.add_channel("other")
    event = InboundMessage(
        address="+491", provider_message_id="42", timestamp=datetime.now(UTC), text="hi"
    )

    first = await inbound.receive(world.db, channel_id=world.channel_id, event=event)
    second = await inbound.receive(world.db, channel_id=other, event=event)

    assert not second.duplicate
    assert second.contact_id != first.contact_id


async def test_resolved_conversation_is_reopened_by_the_next_message(world: World) -> None:
    first = await world.write("+491", "hello")
    assert first.conversation_id is not None
    await inbox.resolve(world.db, actor=world.owner, conversation_id=first.conversation_id)

    later = datetime.now(UTC) + timedelta(minutes=5)
    second = await inbound.receive(
        world.db,
        channel_id=world.channel_id,
        event=InboundMessage(
            address="+491", provider_message_id="p2", timestamp=later, text="anyone there?"
        ),
    )

    assert second.conversation_id == first.conversation_id
    conversation = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=first.conversation_id
    )
    assert conversation["status"] == "open"
    assert conversation["last_inbound_at"] == later
    texts = [
        m["text"]
        for m in await inbox.list_messages(
            world.db, actor=world.owner, conversation_id=first.conversation_id
        )
    ]
    assert texts == ["hello", "anyone there?"]
    assert await _conversation_count(world) == 1


async def test_blocked_contact_is_ignored(world: World) -> None:
    first = await world.write("+491", "hello")
    assert first.conversation_id is not None
    await inbox.resolve(world.db, actor=world.owner, conversation_id=first.conversation_id)
    async with world.db.write() as conn:
        await conn.execute(
            update(contacts).where(contacts.c.id == first.contact_id).values(blocked=True)
        )

    start = await world.write("+491", "START")
    chat = await world.write("+491", "let me in")

    assert start.action is InboundAction.IGNORE and chat.action is InboundAction.IGNORE
    assert (await _contact(world, first.contact_id))["status"] == "none"  # START did nothing
    assert await _consent(world, first.contact_id) == []
    assert await _outbound(world, first.contact_id) == []  # no confirmation, no answer
    conversation = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=first.conversation_id
    )
    assert conversation["status"] == "resolved"  # not reopened for the team
    shown = await inbox.list_messages(
        world.db, actor=world.owner, conversation_id=first.conversation_id
    )
    assert [m["text"] for m in shown] == ["hello"]  # nor shown in it
    kept = await world.rows(
        select(messages.c.text).where(
            messages.c.contact_id == first.contact_id, messages.c.direction == "in"
        )
    )
    assert [m.text for m in kept] == ["hello", "START", "let me in"]  # but kept


async def test_channel_keywords_replace_the_defaults(world: World) -> None:
    custom = await world.add_channel(
        "custom",
        settings={"keywords": {"opt_in": ["JA"], "opt_out": ["NEIN"], "help": ["INFO"]}},
    )

    joined = await world.write("+491", "ja", channel_id=custom)
    start = await world.write("+492", "START", channel_id=custom)
    info = await world.write("+493", "INFO", channel_id=custom)
    left = await world.write("+491", "Nein!", channel_id=custom)
    elsewhere = await world.write("+491", "JA")  # the default channel keeps START/STOP

    assert joined.action is InboundAction.OPT_IN
    assert start.action is InboundAction.CONVERSATION  # START is no keyword here
    assert info.action is InboundAction.HELP
    assert left.action is InboundAction.OPT_OUT
    assert (await _contact(world, joined.contact_id))["status"] == "unsubscribed"
    assert elsewhere.action is InboundAction.CONVERSATION
    assert (await _contact(world, elsewhere.contact_id))["status"] == "none"
