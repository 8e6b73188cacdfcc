"""Agent replies: the customer-service window, blocked contacts, disabled channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from rundfunk.channels.base import InboundMessage
from rundfunk.db.tables import contacts, messages
from rundfunk.services import channels, inbound, inbox
from rundfunk.services.errors import Conflict, Invalid
from service_world import World


async def _conversation_at(world: World, channel_id: int, written_at: datetime) -> int:
    """A contact who last wrote at ``written_at``; returns the conversation id."""
    outcome = await inbound.receive(
        world.db,
        channel_id=channel_id,
        event=InboundMessage(
            address="+491", provider_message_id="first", timestamp=written_at, text="hello"
        ),
    )
    assert outcome.conversation_id is not None
    return outcome.conversation_id


async def _queued_replies(world: World) -> list[str]:
    rows = await world.rows(
        select(messages.c.text).where(messages.c.direction == "out").order_by(messages.c.id)
    )
    return [r.text for r in rows]


async def test_reply_inside_the_window_is_queued(world: World) -> None:
    channel_id = await world.add_channel("wa-like", settings={"service_window_hours": 24})
    written = datetime.now(UTC) - timedelta(hours=23)
    conversation_id = await _conversation_at(world, channel_id, written)

    message = await inbox.reply(
        world.db, actor=world.owner, conversation_id=conversation_id, text="Gladly!"
    )

    assert (message["direction"], message["status"]) == ("out", "queued")
    details = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=conversation_id
    )
    assert details["window_open"] is True
    assert details["window_closes_at"] == written + timedelta(hours=24)


async def test_reply_outside_the_window_is_refused_with_the_hours(world: World) -> None:
    channel_id = await world.add_channel("wa-like", settings={"service_window_hours": 24})
    written = datetime.now(UTC) - timedelta(hours=25)
    conversation_id = await _conversation_at(world, channel_id, written)

    with pytest.raises(Invalid, match="24-hour window is closed") as refused:
        await inbox.reply(world.db, actor=world.owner, conversation_id=conversation_id, text="Hi")

    assert "only an approved template may be sent" in refused.value.message
    assert await _queued_replies(world) == []
    details = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=conversation_id
    )
    assert details["window_open"] is False
    assert details["window_closes_at"] == written + timedelta(hours=24)


async def test_window_length_comes_from_the_channel(world: World) -> None:
    channel_id = await world.add_channel("short", settings={"service_window_hours": 2})
    conversation_id = await _conversation_at(
        world, channel_id, datetime.now(UTC) - timedelta(hours=3)
    )

    with pytest.raises(Invalid, match="the 2-hour window is closed"):
        await inbox.reply(world.db, actor=world.owner, conversation_id=conversation_id, text="Hi")


async def test_any_later_message_reopens_the_window(world: World) -> None:
    """A keyword (HELP) keeps no conversation timestamp, but the platform counts it."""
    channel_id = await world.add_channel("wa-like", settings={"service_window_hours": 24})
    conversation_id = await _conversation_at(
        world, channel_id, datetime.now(UTC) - timedelta(hours=30)
    )
    await world.write("+491", "HELP", channel_id=channel_id)

    await inbox.reply(world.db, actor=world.owner, conversation_id=conversation_id, text="Hi")

    assert (
        await inbox.get_conversation(world.db, actor=world.owner, conversation_id=conversation_id)
    )["window_open"] is True


async def test_channel_without_a_window_always_allows_replies(world: World) -> None:
    conversation_id = await _conversation_at(
        world, world.channel_id, datetime.now(UTC) - timedelta(days=30)
    )

    await inbox.reply(world.db, actor=world.owner, conversation_id=conversation_id, text="Hi")

    details = await inbox.get_conversation(
        world.db, actor=world.owner, conversation_id=conversation_id
    )
    assert (details["window_open"], details["window_closes_at"]) == (True, None)


async def test_reply_to_a_blocked_contact_is_refused(world: World) -> None:
    outcome = await world.write("+491", "hello")
    assert outcome.conversation_id is not None
    async with world.db.write() as conn:
        await conn.execute(
            update(contacts).where(contacts.c.id == outcome.contact_id).values(blocked=True)
        )

    with pytest.raises(Conflict, match="blocked"):
        await inbox.reply(
            world.db, actor=world.owner, conversation_id=outcome.conversation_id, text="Hi"
        )
    assert await _queued_replies(world) == []


async def test_reply_on_a_disabled_channel_is_refused(world: World) -> None:
    outcome = await world.write("+491", "hello")
    assert outcome.conversation_id is not None
    await channels.disable_channel(
        world.db, actor=world.owner, channel_id=world.channel_id, reason="token revoked"
    )

    with pytest.raises(Conflict, match="is disabled: token revoked"):
        await inbox.reply(
            world.db, actor=world.owner, conversation_id=outcome.conversation_id, text="Hi"
        )
    assert await _queued_replies(world) == []


@pytest.mark.parametrize(
    "media_url", ["ftp://example.com/a.png", "/relative.png", "https://", "https://x/" + "a" * 2000]
)
async def test_reply_media_url_is_checked_like_broadcasts(world: World, media_url: str) -> None:
    outcome = await world.write("+491", "hello")
    assert outcome.conversation_id is not None

    with pytest.raises(Invalid, match="media_url must be an http"):
        await inbox.reply(
            world.db,
            actor=world.owner,
            conversation_id=outcome.conversation_id,
            text="see picture",
            media_url=media_url,
        )


async def test_reply_with_a_good_media_url_is_queued_with_it(world: World) -> None:
    outcome = await world.write("+491", "hello")
    assert outcome.conversation_id is not None

    message = await inbox.reply(
        world.db,
        actor=world.owner,
        conversation_id=outcome.conversation_id,
        text="see picture",
        media_url="https://example.com/a.png",
    )

    assert message["media_url"] == "https://example.com/a.png"


@pytest.mark.parametrize("hours", [0, -1, "24", True, 10_000])
async def test_channel_refuses_a_nonsense_window(world: World, hours: object) -> None:
    with pytest.raises(Invalid, match="service_window_hours"):
        await world.add_channel("bad", settings={"service_window_hours": hours})
