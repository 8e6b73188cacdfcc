"""The team: invitations with a one-time link, accepting them, roles and removal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from rundfunk.db.tables import api_tokens, audit_log, members, sessions
from rundfunk.db.types import utcnow
from rundfunk.services import team, workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Forbidden, Invalid, NotFound
from rundfunk.services.secrets import hash_api_token
from rundfunk.services.sessions import log_in, session_member
from service_world import World

URL = "https://rundfunk.example"


def admin_of(world: World, member_id: int, role: Role = Role.ADMIN) -> Actor:
    return Actor(world.workspace_id, role, f"member:{member_id}", member_id=member_id)


async def invite(
    world: World, email: str = "ana@acme.test", role: str = "agent"
) -> team.Invitation:
    return await team.invite_member(
        world.db, actor=world.owner, email=email, name="Ana", role=role, public_url=URL + "/"
    )


def token_of(invitation: team.Invitation) -> str:
    return invitation.link.rsplit("/", 1)[1]


async def test_an_invitation_is_a_member_without_password_and_a_hashed_link(world: World) -> None:
    invitation = await invite(world, email=" Ana@Acme.TEST ")
    assert invitation.link.startswith(f"{URL}/invite/") and len(token_of(invitation)) > 30
    row = (await world.rows(select(members).where(members.c.id == invitation.member_id)))[0]
    assert row.email == "ana@acme.test" and row.role == "agent" and row.password_hash is None
    assert row.invite_hash == hash_api_token(token_of(invitation))
    left = row.invite_expires_at - utcnow()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)
    listed = await team.list_team(world.db, actor=world.owner)
    assert [(m["email"], m["invited"]) for m in listed] == [
        ("owner@acme.test", False),
        ("ana@acme.test", True),
    ]
    actions = await world.scalar(select(func.count()).where(audit_log.c.action == "member.invite"))
    assert actions == 1


async def test_accepting_sets_the_password_uses_up_the_link_and_opens_a_session(
    world: World,
) -> None:
    invitation = await invite(world)
    token = token_of(invitation)
    found = await team.find_invite(world.db, token=token)
    assert (found.email, found.role, found.workspace_name) == ("ana@acme.test", Role.AGENT, "Acme")
    with pytest.raises(Invalid, match="at least 8") as short:
        await team.accept_invite(world.db, token=token, password="short")
    assert short.value.field == "password"
    new = await team.accept_invite(world.db, token=token, password="a good password")
    member = await session_member(world.db, new.token)
    assert member is not None and member.email == "ana@acme.test" and member.role is Role.AGENT
    with pytest.raises(NotFound, match="not valid or has been used"):
        await team.accept_invite(world.db, token=token, password="another password")
    again = await log_in(world.db, email="ana@acme.test", password="a good password", client="t")
    assert again.member_id == invitation.member_id
    listed = await team.list_team(world.db, actor=world.owner)
    assert not listed[-1]["invited"]


async def test_an_expired_or_unknown_link_is_refused(world: World) -> None:
    invitation = await invite(world)
    async with world.db.write() as conn:
        await conn.execute(
            update(members).values(invite_expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(NotFound, match="expired"):
        await team.accept_invite(world.db, token=token_of(invitation), password="a good password")
    with pytest.raises(NotFound):
        await team.find_invite(world.db, token="nonsense")
    renewed = await team.renew_invite(
        world.db, actor=world.owner, member_id=invitation.member_id, public_url=URL
    )
    with pytest.raises(NotFound):  # the old link stays dead
        await team.find_invite(world.db, token=token_of(invitation))
    await team.accept_invite(world.db, token=token_of(renewed), password="a good password")
    with pytest.raises(Conflict, match="accepted"):
        await team.renew_invite(
            world.db, actor=world.owner, member_id=invitation.member_id, public_url=URL
        )


@pytest.mark.parametrize(
    ("email", "role", "error", "field"),
    [
        ("not-an-address", "agent", Invalid, "email"),
        ("owner@acme.test", "agent", Conflict, "email"),
        ("new@acme.test", "boss", Invalid, "role"),
    ],
)
async def test_invitation_refusals(
    world: World, email: str, role: str, error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as refused:
        await invite(world, email=email, role=role)
    assert getattr(refused.value, "field", None) == field


async def test_admins_invite_admins_but_only_owners_make_owners(world: World) -> None:
    admin_id = await workspaces.create_member(
        world.db, workspace_id=world.workspace_id, email="admin@acme.test", role=Role.ADMIN
    )
    admin = admin_of(world, admin_id)
    await team.invite_member(
        world.db, actor=admin, email="b@acme.test", name="", role="admin", public_url=URL
    )
    with pytest.raises(Forbidden, match="only an owner"):
        await team.invite_member(
            world.db, actor=admin, email="c@acme.test", name="", role="owner", public_url=URL
        )
    with pytest.raises(Forbidden, match="needs the role admin"):
        await team.invite_member(
            world.db,
            actor=world.actor(Role.EDITOR),
            email="d@acme.test",
            name="",
            role="agent",
            public_url=URL,
        )
    await invite(world, email="o@acme.test", role="owner")  # an owner may


async def test_role_changes_keep_an_owner_and_nobody_changes_themself(world: World) -> None:
    admin_id = await workspaces.create_member(
        world.db, workspace_id=world.workspace_id, email="admin@acme.test", role=Role.ADMIN
    )
    agent = await invite(world)
    admin = admin_of(world, admin_id)
    await team.change_role(world.db, actor=admin, member_id=agent.member_id, role="editor")
    with pytest.raises(Forbidden, match="own role"):
        await team.change_role(world.db, actor=admin, member_id=admin_id, role="owner")
    with pytest.raises(Forbidden, match="only an owner"):
        await team.change_role(world.db, actor=admin, member_id=agent.member_id, role="owner")
    assert world.owner.member_id is not None
    with pytest.raises(Forbidden, match="only an owner"):
        await team.change_role(world.db, actor=admin, member_id=world.owner.member_id, role="agent")
    # A CLI actor (no member) still cannot demote the last owner.
    cli = Actor(world.workspace_id, Role.OWNER, "cli")
    with pytest.raises(Conflict, match="last owner"):
        await team.change_role(world.db, actor=cli, member_id=world.owner.member_id, role="admin")
    await team.change_role(world.db, actor=world.owner, member_id=admin_id, role="owner")
    await team.change_role(world.db, actor=cli, member_id=world.owner.member_id, role="admin")
    roles = dict(await world.rows(select(members.c.id, members.c.role)))
    assert roles[agent.member_id] == "editor" and roles[admin_id] == "owner"


async def test_removing_a_member_ends_their_sessions_and_tokens(world: World) -> None:
    invitation = await invite(world)
    new = await team.accept_invite(world.db, token=token_of(invitation), password="a good password")
    await workspaces.create_token(
        world.db, workspace_id=world.workspace_id, role=Role.AGENT, member_id=invitation.member_id
    )
    await team.remove_member(world.db, actor=world.owner, member_id=invitation.member_id)
    assert await session_member(world.db, new.token) is None
    assert await world.scalar(select(func.count()).select_from(sessions)) == 0
    assert await world.scalar(select(func.count()).select_from(api_tokens)) == 0
    with pytest.raises(NotFound):
        await team.remove_member(world.db, actor=world.owner, member_id=invitation.member_id)


async def test_nobody_removes_themself_or_the_last_owner(world: World) -> None:
    assert world.owner.member_id is not None
    with pytest.raises(Forbidden, match="yourself"):
        await team.remove_member(world.db, actor=world.owner, member_id=world.owner.member_id)
    cli = Actor(world.workspace_id, Role.OWNER, "cli")
    with pytest.raises(Conflict, match="last owner"):
        await team.remove_member(world.db, actor=cli, member_id=world.owner.member_id)
    admin_id = await workspaces.create_member(
        world.db, workspace_id=world.workspace_id, email="admin@acme.test", role=Role.ADMIN
    )
    with pytest.raises(Forbidden, match="only an owner"):
        await team.remove_member(
            world.db, actor=admin_of(world, admin_id), member_id=world.owner.member_id
        )


async def test_another_workspaces_member_is_not_found(world: World) -> None:
    other = await workspaces.create_workspace(world.db, slug="other")
    theirs = await workspaces.create_member(
        world.db, workspace_id=other, email="x@other.test", role=Role.AGENT
    )
    with pytest.raises(NotFound):
        await team.remove_member(world.db, actor=world.owner, member_id=theirs)
    with pytest.raises(NotFound):
        await team.change_role(world.db, actor=world.owner, member_id=theirs, role="editor")
    with pytest.raises(NotFound):
        await team.renew_invite(world.db, actor=world.owner, member_id=theirs, public_url=URL)
