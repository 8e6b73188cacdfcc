"""Blocking at the service level: a broadcast already fanned out skips a contact blocked
before the send, and a reply queued before the block never goes out."""

from __future__ import annotations

from sqlalchemy import select

from rundfunk.db.tables import messages, sandbox_messages
from rundfunk.services import blocking, dispatch
from rundfunk.services.actors import Role
from service_world import World


async def test_a_contact_blocked_after_fan_out_is_skipped_at_claim(world: World) -> None:
    stays = await world.subscriber("+491")
    troll = await world.subscriber("+492")
    broadcast_id = await world.send("Hi")
    await blocking.block_contact(world.db, actor=world.actor(Role.AGENT), contact_id=troll)
    # A welcome still queued for the troll is not sent either.
    welcome = await world.rows(
        select(messages.c.status, messages.c.error_reason).where(
            messages.c.contact_id == troll, messages.c.direction == "out"
        )
    )
    assert [tuple(row) for row in welcome] == [("failed", "not sent: the contact is blocked")]

    jobs = await dispatch.claim(world.db, limit=1000, lease_seconds=60)

    assert {j.contact_id for j in jobs if j.table == "deliveries"} == {stays}
    assert {j.contact_id for j in jobs if j.table == "messages"} == {stays}  # the welcome
    rows = {d.contact_id: d for d in await world.deliveries_of(broadcast_id)}
    assert rows[troll].status == "skipped"
    assert await world.rows(select(sandbox_messages.c.id)) == []  # claiming sends nothing
