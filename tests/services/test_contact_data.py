"""A person's data: the export holds everything stored about them, erasure removes it
all (and keeps broadcast totals right); tags, search and topic verbs around them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rundfunk.db.tables import (
    audit_log,
    consent_events,
    contacts,
    conversations,
    deliveries,
    messages,
    subscriptions,
)
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services import contact_data, inbox, topics
from rundfunk.services import contacts as contact_service
from rundfunk.services.actors import Role
from rundfunk.services.errors import Conflict, Forbidden, Invalid, NotFound
from service_world import World


async def _talking_subscriber(world: World) -> tuple[int, int]:
    """Ada opted in to sport, chatted, got a note and a broadcast: (contact, broadcast)."""
    await world.add_topic("sport", "Sport")
    contact_id = await world.subscriber("+4915100000001", name="Ada", topic="sport")
    outcome = await world.write("+4915100000001", "Where is my order?")
    assert outcome.conversation_id is not None
    await inbox.add_note(
        world.db, actor=world.owner, conversation_id=outcome.conversation_id, text="VIP"
    )
    await world.subscriber("+4915100000002", name="Bob")
    broadcast_id = await world.send("Hello everyone")
    return contact_id, broadcast_id


async def test_the_export_holds_everything_stored_about_the_person(world: World) -> None:
    contact_id, broadcast_id = await _talking_subscriber(world)

    data = await contact_data.export_contact(world.db, actor=world.owner, contact_id=contact_id)

    assert data["format"] == "rundfunk.contact-export/1"
    assert data["contact"]["address"] == "+4915100000001"
    assert data["contact"]["name"] == "Ada"
    assert data["channel"]["id"] == world.channel_id
    assert [s["key"] for s in data["subscriptions"]] == ["sport"]
    [event] = data["consent_events"]
    assert (event["kind"], event["keyword"], event["topic_key"]) == (
        "opt_in",
        "START sport",
        "sport",
    )
    assert event["text_shown"]
    assert data["conversation"]["status"] == "open"
    texts = [m["text"] for m in data["messages"]]
    assert "Where is my order?" in texts and "VIP" in texts and "START sport" in texts
    assert [d["broadcast_id"] for d in data["deliveries"]] == [broadcast_id]
    assert data["deliveries"][0]["broadcast_text"] == "Hello everyone"
    # nobody else's data
    assert all(m["text"] != "START" for m in data["messages"])


async def test_export_and_erasure_are_for_admins_of_the_same_workspace(world: World) -> None:
    contact_id, _ = await _talking_subscriber(world)
    for role in (Role.AGENT, Role.EDITOR):
        with pytest.raises(Forbidden):
            await contact_data.export_contact(
                world.db, actor=world.actor(role), contact_id=contact_id
            )
        with pytest.raises(Forbidden):
            await contact_data.erase_contact(
                world.db, actor=world.actor(role), contact_id=contact_id
            )
    stranger = world.actor(Role.OWNER).__class__(
        workspace_id=world.workspace_id + 1, role=Role.OWNER, label="member:999"
    )
    with pytest.raises(NotFound):
        await contact_data.export_contact(world.db, actor=stranger, contact_id=contact_id)
    with pytest.raises(NotFound):
        await contact_data.erase_contact(world.db, actor=stranger, contact_id=contact_id)
    assert await world.scalar(select(contacts.c.id).where(contacts.c.id == contact_id))


async def test_erasure_removes_everything_and_keeps_broadcast_totals(world: World) -> None:
    contact_id, broadcast_id = await _talking_subscriber(world)
    assert (await world.broadcast(broadcast_id)).total == 2
    preview = await contact_data.erasure_preview(
        world.db, actor=world.actor(Role.ADMIN), contact_id=contact_id
    )

    erased = await contact_data.erase_contact(
        world.db, actor=world.actor(Role.ADMIN), contact_id=contact_id
    )

    assert erased == preview
    assert erased["conversations"] == 1 and erased["deliveries"] == 1
    assert erased["consent_events"] == 1 and erased["subscriptions"] == 1
    assert erased["messages"] >= 4  # START, its confirmation, the question, the note
    for table in (messages, conversations, consent_events, subscriptions, deliveries):
        left = await world.scalar(
            select(func.count()).select_from(table).where(table.c.contact_id == contact_id)
        )
        assert left == 0, table.name
    assert await world.scalar(select(contacts.c.id).where(contacts.c.id == contact_id)) is None
    broadcast = await world.broadcast(broadcast_id)
    assert broadcast.total == 1 == len(await world.deliveries_of(broadcast_id))
    entry = (await world.rows(select(audit_log).where(audit_log.c.action == "contact.erase")))[0]
    assert (entry.target_type, entry.target_id) == ("contact", contact_id)
    assert "Ada" not in str(entry.details) and "4915100000001" not in str(entry.details)
    with pytest.raises(NotFound):
        await contact_service.get_contact(world.db, actor=world.owner, contact_id=contact_id)
    # the other subscriber's broadcast still finishes and counts right
    stats = await broadcast_service.get_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )
    assert stats["stats"]["total"] == 1


async def test_a_person_who_writes_again_after_erasure_starts_fresh(world: World) -> None:
    contact_id = await world.subscriber("4917", name="Cem")
    await contact_data.erase_contact(world.db, actor=world.owner, contact_id=contact_id)
    again = await world.write("4917", "hello?")
    # (SQLite may hand the freed id out again: the row is new all the same)
    fresh = await contact_service.get_contact(
        world.db, actor=world.owner, contact_id=again.contact_id
    )
    assert fresh["status"] == "none" and fresh["consent_history"] == []


async def test_search_tags_and_status_filters(world: World) -> None:
    ada = await world.subscriber("+49 151 000 01", name="Ada Lovelace")
    bob = await world.subscriber("4915100002", name="Bob")
    await world.write("4915100003", "just asking")  # never subscribed
    owner = world.owner

    async def found(**filters: object) -> list[int]:
        rows = await contact_service.list_contacts(world.db, actor=owner, **filters)  # type: ignore[arg-type]
        return [r["id"] for r in rows]

    assert await found(search="lovelace") == [ada]
    assert await found(search="ADA") == [ada]
    assert await found(search="100002") == [bob]
    assert await found(search="+49 151 000 02") == [bob]  # spaces and + ignored
    assert await found(search="%") == []  # wildcards are literal
    await contact_service.set_tags(
        world.db, actor=world.actor(Role.AGENT), contact_id=bob, tags="vip, b2b"
    )
    assert await found(tag="vip") == [bob]
    assert await found(tag="vi") == []  # a whole tag, not part of one
    assert await contact_service.known_tags(world.db, actor=owner) == ["b2b", "vip"]
    assert len(await found(status="none")) == 1
    assert await contact_service.count_contacts(world.db, actor=owner, status="subscribed") == 2
    newest = await found(newest_first=True, limit=2)
    assert newest[1] == bob and await found(newest_first=True, after_id=bob) == [ada]
    with pytest.raises(Invalid) as refused:
        await contact_service.set_tags(world.db, actor=owner, contact_id=bob, tags='say "hi"')
    assert refused.value.field == "tags"


async def test_topics_rename_delete_and_count_subscribers(world: World) -> None:
    sport = await world.add_topic("sport", "Sport")
    await world.subscriber("4901", topic="sport")
    await world.subscriber("4902", topic="sport")
    await world.write("4902", "STOP")  # left the channel: no longer counted
    listed = await topics.list_topics_with_counts(world.db, actor=world.owner)
    assert [(t["key"], t["subscribers"]) for t in listed] == [("sport", 1)]

    renamed = await topics.rename_topic(
        world.db, actor=world.actor(Role.EDITOR), topic_id=sport, name="  Sport news "
    )
    assert (renamed["key"], renamed["name"]) == ("sport", "Sport news")
    with pytest.raises(Invalid) as empty:
        await topics.rename_topic(world.db, actor=world.owner, topic_id=sport, name=" ")
    assert empty.value.field == "name"
    with pytest.raises(Forbidden):
        await topics.delete_topic(world.db, actor=world.actor(Role.AGENT), topic_id=sport)

    draft = await broadcast_service.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="x", topic_keys=["sport"]
    )
    with pytest.raises(Conflict, match=f"draft broadcast {draft['id']}"):
        await topics.delete_topic(world.db, actor=world.owner, topic_id=sport)
    await broadcast_service.cancel_broadcast(world.db, actor=world.owner, broadcast_id=draft["id"])

    removed = await topics.delete_topic(world.db, actor=world.owner, topic_id=sport)
    assert removed == 1  # STOP already ended the other one
    assert await topics.list_topics(world.db, actor=world.owner) == []
    kept = await world.scalar(select(func.count()).select_from(consent_events))
    assert kept == 3  # the consent record stays, without the topic
    with pytest.raises(NotFound):
        await topics.delete_topic(world.db, actor=world.owner, topic_id=sport)
