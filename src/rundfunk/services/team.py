"""The team of a workspace: invite members, accept an invitation, change roles, remove.

There is no mail server: an invitation creates the member without a password and
returns a one-time link (``/invite/<token>``, valid 7 days) that the inviter passes
on. Only the token's sha256 is stored, so a copy of the database accepts no
invitation. Role rules: admins invite and manage admins, editors and agents; only an
owner makes, changes or removes owners; nobody changes or removes themself, and the
last owner always stays.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import members, workspaces
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Forbidden, Invalid, NotFound
from rundfunk.services.secrets import hash_api_token, hash_password
from rundfunk.services.sessions import NewSession, check_password, open_session
from rundfunk.services.workspaces import EMAIL

INVITE_DAYS = 7
MAX_NAME = 200


@dataclass(frozen=True)
class Invitation:
    member_id: int
    link: str  # shown once to the inviter; only its hash is stored
    expires_at: datetime


@dataclass(frozen=True)
class InvitedMember:
    """Who an invitation link is for, shown on the page that accepts it."""

    member_id: int
    name: str
    email: str
    role: Role
    workspace_name: str


def _may_manage(actor: Actor, role: Role) -> None:
    """Owners are made, changed and removed by owners only."""
    if role is Role.OWNER and actor.role is not Role.OWNER:
        raise Forbidden("only an owner may make, change or remove owners", field="role")


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(
            f"role must be one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def _new_token(now: datetime) -> tuple[str, str, datetime]:
    token = secrets.token_urlsafe(32)
    return token, hash_api_token(token), now + timedelta(days=INVITE_DAYS)


async def list_team(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Members with their role and whether they still have to accept an invitation."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                members.c.id,
                members.c.email,
                members.c.name,
                members.c.role,
                members.c.created_at,
                members.c.invite_expires_at,
                members.c.password_hash.is_(None).label("no_password"),
            )
            .where(members.c.workspace_id == actor.workspace_id)
            .order_by(members.c.id)
        )
        now = utcnow()
        return [
            {
                "id": r.id,
                "email": r.email,
                "name": r.name,
                "role": Role(r.role),
                "created_at": r.created_at,
                "invited": r.invite_expires_at is not None,
                "invite_expires_at": r.invite_expires_at,
                "invite_expired": r.invite_expires_at is not None and r.invite_expires_at < now,
                "no_password": bool(r.no_password),
                "is_you": r.id == actor.member_id,
            }
            for r in rows
        ]


async def invite_member(
    db: Database, *, actor: Actor, email: str, name: str, role: str, public_url: str
) -> Invitation:
    """Create a member without a password and return the one-time link to set one."""
    actor.require(Role.ADMIN)
    email = email.strip().lower()
    name = name.strip()
    if not EMAIL.match(email) or len(email) > 254:
        raise Invalid("enter an e-mail address such as ana@example.com", field="email")
    if len(name) > MAX_NAME:
        raise Invalid(f"a name can have at most {MAX_NAME} characters", field="name")
    wanted = _role(role)
    _may_manage(actor, wanted)
    now = utcnow()
    token, digest, expires = _new_token(now)
    try:
        async with db.write() as conn:
            result = await conn.execute(
                members.insert().values(
                    workspace_id=actor.workspace_id,
                    email=email,
                    name=name or email.split("@")[0],
                    role=wanted.value,
                    password_hash=None,
                    created_at=now,
                    invite_hash=digest,
                    invite_expires_at=expires,
                )
            )
            assert result.inserted_primary_key is not None
            member_id = int(result.inserted_primary_key[0])
            await audit.record(
                conn,
                actor,
                "member.invite",
                target_type="member",
                target_id=member_id,
                details={"role": wanted.value},
            )
    except IntegrityError as exc:
        raise Conflict(f"{email} is a member of this workspace already", field="email") from exc
    return Invitation(member_id, f"{public_url.rstrip('/')}/invite/{token}", expires)


async def renew_invite(
    db: Database, *, actor: Actor, member_id: int, public_url: str
) -> Invitation:
    """A fresh link for a member who has not accepted yet (the old link stops working)."""
    actor.require(Role.ADMIN)
    now = utcnow()
    token, digest, expires = _new_token(now)
    async with db.write() as conn:
        row = await _member(conn, actor, member_id)
        _may_manage(actor, Role(row.role))
        if row.invite_expires_at is None:
            raise Conflict("this member has accepted the invitation already")
        await conn.execute(
            update(members)
            .where(members.c.id == member_id)
            .values(invite_hash=digest, invite_expires_at=expires)
        )
        await audit.record(
            conn, actor, "member.reinvite", target_type="member", target_id=member_id
        )
    return Invitation(member_id, f"{public_url.rstrip('/')}/invite/{token}", expires)


async def find_invite(db: Database, *, token: str) -> InvitedMember:
    """The member a link invites; NotFound when unknown, used or expired."""
    if not token or len(token) > 256:
        raise NotFound("this invitation link is not valid")
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    members.c.id,
                    members.c.name,
                    members.c.email,
                    members.c.role,
                    members.c.invite_expires_at,
                    workspaces.c.name.label("workspace_name"),
                )
                .join(workspaces, workspaces.c.id == members.c.workspace_id)
                .where(members.c.invite_hash == hash_api_token(token))
            )
        ).first()
    if row is None:
        raise NotFound("this invitation link is not valid or has been used already")
    if row.invite_expires_at is None or row.invite_expires_at < utcnow():
        raise NotFound("this invitation link has expired; ask for a new one")
    return InvitedMember(row.id, row.name, row.email, Role(row.role), row.workspace_name)


async def accept_invite(db: Database, *, token: str, password: str) -> NewSession:
    """Set the invited member's password, use up the link, and sign them in."""
    invited = await find_invite(db, token=token)
    check_password(password)
    async with db.write() as conn:
        changed = await conn.execute(
            update(members)
            .where(members.c.id == invited.member_id)
            .where(members.c.invite_hash == hash_api_token(token))
            .values(password_hash=hash_password(password), invite_hash=None, invite_expires_at=None)
        )
        if changed.rowcount != 1:  # accepted in another tab a moment ago
            raise NotFound("this invitation link has been used already")
    return await open_session(db, member_id=invited.member_id)


async def _member(conn: AsyncConnection, actor: Actor, member_id: int) -> Any:
    row = (
        await conn.execute(
            select(members.c.id, members.c.role, members.c.invite_expires_at).where(
                members.c.id == member_id, members.c.workspace_id == actor.workspace_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no member {member_id}")
    return row


async def _owners(conn: AsyncConnection, workspace_id: int) -> int:
    count = await conn.scalar(
        select(func.count())
        .select_from(members)
        .where(members.c.workspace_id == workspace_id, members.c.role == Role.OWNER.value)
    )
    return int(count or 0)


async def change_role(db: Database, *, actor: Actor, member_id: int, role: str) -> None:
    actor.require(Role.ADMIN)
    wanted = _role(role)
    if member_id == actor.member_id:
        raise Forbidden("you cannot change your own role; ask another admin", field="role")
    async with db.write() as conn:
        row = await _member(conn, actor, member_id)
        current = Role(row.role)
        _may_manage(actor, current)
        _may_manage(actor, wanted)
        if current is wanted:
            return
        if current is Role.OWNER and await _owners(conn, actor.workspace_id) <= 1:
            raise Conflict("the last owner stays an owner", field="role")
        await conn.execute(
            update(members).where(members.c.id == member_id).values(role=wanted.value)
        )
        await audit.record(
            conn,
            actor,
            "member.role",
            target_type="member",
            target_id=member_id,
            details={"from": current.value, "to": wanted.value},
        )


async def remove_member(db: Database, *, actor: Actor, member_id: int) -> None:
    """Remove a member; their sessions and API tokens go with them (FK cascade)."""
    actor.require(Role.ADMIN)
    if member_id == actor.member_id:
        raise Forbidden("you cannot remove yourself; ask another admin")
    async with db.write() as conn:
        row = await _member(conn, actor, member_id)
        current = Role(row.role)
        _may_manage(actor, current)
        if current is Role.OWNER and await _owners(conn, actor.workspace_id) <= 1:
            raise Conflict("the last owner cannot be removed")
        await conn.execute(delete(members).where(members.c.id == member_id))
        await audit.record(
            conn,
            actor,
            "member.remove",
            target_type="member",
            target_id=member_id,
            details={"role": current.value},
        )
