"""Channels: disabling by hand, the service window per kind, the registry's seam."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from rundfunk.channels.sandbox import SandboxChannel
from rundfunk.core.ratelimit import Rate
from rundfunk.db.tables import audit_log, channels
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channels import disable_channel, service_window
from rundfunk.services.errors import Forbidden, NotFound
from service_world import World


async def test_disabling_a_channel_pauses_its_sending_broadcasts(world: World) -> None:
    await world.subscriber("+491")
    sending = await world.send("News")
    other_channel = await world.add_channel("other")
    await world.subscriber("+492", channel_id=other_channel)
    elsewhere = await world.send("News", channel_id=other_channel)

    await disable_channel(
        world.db, actor=world.owner, channel_id=world.channel_id, reason="number moved"
    )
    await disable_channel(  # twice: no second audit row, nothing else changes
        world.db, actor=world.owner, channel_id=world.channel_id, reason="number moved"
    )

    row = await world.broadcast(sending)
    assert (row.status, row.status_reason) == ("paused", "channel disabled: number moved")
    assert (await world.broadcast(elsewhere)).status == "sending"
    [channel] = await world.rows(
        select(channels.c.status, channels.c.status_reason).where(channels.c.id == world.channel_id)
    )
    assert tuple(channel) == ("disabled", "number moved")
    audits = await world.rows(
        select(audit_log.c.actor).where(audit_log.c.action == "channel.disable")
    )
    assert [a.actor for a in audits] == [world.owner.label]


@pytest.mark.parametrize("role", [Role.AGENT, Role.EDITOR])
async def test_only_admins_disable_channels(world: World, role: Role) -> None:
    with pytest.raises(Forbidden):
        await disable_channel(
            world.db, actor=world.actor(role), channel_id=world.channel_id, reason="oops"
        )


async def test_another_workspaces_channel_cannot_be_disabled(world: World) -> None:
    stranger = Actor(workspace_id=world.workspace_id + 1, role=Role.OWNER, label="member:99")
    with pytest.raises(NotFound):
        await disable_channel(world.db, actor=stranger, channel_id=world.channel_id, reason="x")
    [channel] = await world.rows(select(channels.c.status))
    assert channel.status == "active"


def test_service_window_per_kind() -> None:
    assert service_window("sandbox", {}) is None
    assert service_window("sandbox", {"service_window_hours": 2}) == timedelta(hours=2)
    # WhatsApp's window is the platform's rule, not a setting.
    assert service_window("whatsapp", {}) == timedelta(hours=24)
    assert service_window("whatsapp", {"service_window_hours": 1}) == timedelta(hours=24)


async def test_registered_channel_replaces_the_one_built_from_its_row(world: World) -> None:
    built = await world.registry.get(world.channel_id)
    replacement = SandboxChannel(world.channel_id, world.sandbox)
    assert replacement is not built

    world.registry.register(replacement, Rate(5, 1), {"note": "by hand"})

    assert await world.registry.get(world.channel_id) is replacement
    assert await world.registry.rate(world.channel_id) == Rate(5, 1)
    assert await world.registry.settings(world.channel_id) == {"note": "by hand"}
