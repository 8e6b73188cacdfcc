"""Console sessions: sign-in, throttling, expiry, sign-out, password change, first setup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from rundfunk.db.tables import channels, login_attempts, sessions, workspaces
from rundfunk.db.types import utcnow
from rundfunk.services import sessions as svc
from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Role
from rundfunk.services.errors import Conflict, Invalid, Throttled
from service_world import World

PASSWORD = "a long enough password"


async def _member(world: World, email: str = "ana@example.com", role: Role = Role.AGENT) -> int:
    return await ws.create_member(
        world.db, workspace_id=world.workspace_id, email=email, role=role, password=PASSWORD
    )


async def test_a_right_password_opens_a_session_with_its_own_csrf_token(world: World) -> None:
    member_id = await _member(world)
    first = await svc.log_in(world.db, email=" Ana@Example.com ", password=PASSWORD, client="c")
    second = await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="c")
    one = await svc.session_member(world.db, first.token)
    two = await svc.session_member(world.db, second.token)
    assert one is not None and two is not None
    assert one.member_id == member_id and one.role is Role.AGENT
    assert one.csrf_token != two.csrf_token
    assert one.actor.label == f"member:{member_id}"
    async with world.db.read() as conn:  # only the hash is stored
        stored = (await conn.execute(select(sessions.c.token_hash))).scalars().all()
    assert first.token not in stored and len(stored) == 2


async def test_a_wrong_password_is_refused_and_unknown_tokens_open_nothing(world: World) -> None:
    await _member(world)
    with pytest.raises(Invalid, match="e-mail address or the password is wrong") as refused:
        await svc.log_in(world.db, email="ana@example.com", password="nope", client="c")
    assert refused.value.field == "password"
    with pytest.raises(Invalid):
        await svc.log_in(world.db, email="nobody@example.com", password=PASSWORD, client="c")
    assert await svc.session_member(world.db, "made-up") is None
    assert await svc.session_member(world.db, "") is None


async def test_repeated_failures_lock_the_address_even_for_the_right_password(
    world: World,
) -> None:
    await _member(world)
    for _ in range(5):
        with pytest.raises(Invalid):
            await svc.log_in(world.db, email="ana@example.com", password="guess", client="c")
    with pytest.raises(Throttled, match="try again in"):
        await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="c")
    # Once the wait is over, the right password works and clears the count.
    async with world.db.write() as conn:
        await conn.execute(update(login_attempts).values(locked_until=utcnow()))
    await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="c")
    async with world.db.read() as conn:
        keys = (await conn.execute(select(login_attempts.c.key))).scalars().all()
    assert "email:ana@example.com" not in keys


async def test_one_client_guessing_many_addresses_is_throttled(world: World) -> None:
    await _member(world)
    for number in range(20):
        with pytest.raises(Invalid):
            await svc.log_in(world.db, email=f"x{number}@example.com", password="x", client="bot")
    with pytest.raises(Throttled):
        await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="bot")
    await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="person")


async def test_expired_sessions_open_nothing_and_sign_out_ends_one(world: World) -> None:
    member_id = await _member(world)
    old = await svc.open_session(world.db, member_id=member_id)
    kept = await svc.open_session(world.db, member_id=member_id)
    async with world.db.write() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.token_hash != "")
            .where(sessions.c.id == select(func.min(sessions.c.id)).scalar_subquery())
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await svc.session_member(world.db, old.token) is None
    member = await svc.session_member(world.db, kept.token)
    assert member is not None
    await svc.log_out(world.db, session_id=member.session_id)
    assert await svc.session_member(world.db, kept.token) is None


async def test_a_password_change_needs_the_current_one_and_ends_other_sessions(
    world: World,
) -> None:
    member_id = await _member(world)
    here = await svc.open_session(world.db, member_id=member_id)
    elsewhere = await svc.open_session(world.db, member_id=member_id)
    member = await svc.session_member(world.db, here.token)
    assert member is not None
    with pytest.raises(Invalid) as wrong:
        await svc.change_password(world.db, member=member, current="nope", new="another one!")
    assert wrong.value.field == "current_password"
    with pytest.raises(Invalid) as short:
        await svc.change_password(world.db, member=member, current=PASSWORD, new="short")
    assert short.value.field == "new_password"
    await svc.change_password(world.db, member=member, current=PASSWORD, new="another one!")
    assert await svc.session_member(world.db, here.token) is not None
    assert await svc.session_member(world.db, elsewhere.token) is None
    with pytest.raises(Invalid):
        await svc.log_in(world.db, email="ana@example.com", password=PASSWORD, client="c")
    await svc.log_in(world.db, email="ana@example.com", password="another one!", client="c")


async def test_first_setup_creates_workspace_owner_and_sandbox_once(world: World) -> None:
    # The world's members have no passwords: nobody can sign in yet.
    assert await svc.needs_setup(world.db)
    with pytest.raises(Invalid) as bad:
        await svc.set_up_owner(
            world.db, workspace_name="Kiosk", name="Ana", email="no", password=PASSWORD,
            sandbox=True,
        )  # fmt: skip
    assert bad.value.field == "email"
    new = await svc.set_up_owner(
        world.db, workspace_name="Kiosk am Eck", name="Ana", email="ana@kiosk.de",
        password=PASSWORD, sandbox=True,
    )  # fmt: skip
    owner = await svc.session_member(world.db, new.token)
    assert owner is not None and owner.role is Role.OWNER
    assert owner.workspace_name == "Kiosk am Eck"
    async with world.db.read() as conn:
        slug = await conn.scalar(
            select(workspaces.c.slug).where(workspaces.c.id == owner.workspace_id)
        )
        kinds = (
            (
                await conn.execute(
                    select(channels.c.kind).where(channels.c.workspace_id == owner.workspace_id)
                )
            )
            .scalars()
            .all()
        )
    assert slug == "kiosk-am-eck" and kinds == ["sandbox"]
    assert not await svc.needs_setup(world.db)
    with pytest.raises(Conflict, match="set up already"):
        await svc.set_up_owner(
            world.db, workspace_name="Other", name="", email="eve@example.com",
            password=PASSWORD, sandbox=False,
        )  # fmt: skip
