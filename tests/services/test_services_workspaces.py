"""Workspace members: who may see the list."""

from __future__ import annotations

import pytest

from rundfunk.services import workspaces
from rundfunk.services.actors import Role
from rundfunk.services.errors import Forbidden
from service_world import World


@pytest.mark.parametrize("role", [Role.AGENT, Role.EDITOR])
async def test_members_are_not_listed_below_admin(world: World, role: Role) -> None:
    with pytest.raises(Forbidden, match="needs the role admin"):
        await workspaces.list_members(world.db, actor=world.actor(role))


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
async def test_admins_list_members(world: World, role: Role) -> None:
    await workspaces.create_member(
        world.db, workspace_id=world.workspace_id, email="Agent@Acme.test", role=Role.AGENT
    )

    listed = await workspaces.list_members(world.db, actor=world.actor(role))

    assert [(m["email"], m["role"]) for m in listed] == [
        ("owner@acme.test", "owner"),
        ("agent@acme.test", "agent"),
    ]
