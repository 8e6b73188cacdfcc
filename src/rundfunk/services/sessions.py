"""Console logins: sign in with throttling, sessions with their CSRF token, sign out,
password changes, and the first-run setup of an owner.

A session is a random cookie value of which only the sha256 is stored, so a copy of
the database opens no session. Each session has its own CSRF token, which every form
and every script request of the console must echo.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import login_attempts, members, sessions, workspaces
from rundfunk.db.types import utcnow
from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Actor, Role, system_actor
from rundfunk.services.channels import create_channel
from rundfunk.services.errors import Conflict, Invalid, Throttled
from rundfunk.services.secrets import hash_api_token, hash_password, verify_password

SESSION_DAYS = 14
LOCALES = ("en", "de")
MIN_PASSWORD = 8
# Throttling: after 5 failures for one e-mail address (or 20 from one client address),
# each further try waits 30 s, doubling up to 15 min. A success clears the count.
_FREE_FAILURES = {"email": 5, "client": 20}
_FIRST_WAIT_S = 30
_MAX_WAIT_S = 15 * 60
# Failures older than this are forgotten.
_FAILURE_MEMORY = timedelta(hours=1)


@dataclass(frozen=True)
class SessionMember:
    """Who a console request comes from."""

    session_id: int
    member_id: int
    workspace_id: int
    workspace_name: str
    role: Role
    name: str
    email: str
    locale: str
    csrf_token: str
    timezone: str  # the workspace's, for showing and entering times

    @property
    def actor(self) -> Actor:
        return Actor(
            workspace_id=self.workspace_id,
            role=self.role,
            label=f"member:{self.member_id}",
            member_id=self.member_id,
        )


@dataclass(frozen=True)
class NewSession:
    token: str  # the cookie value; shown once, stored only hashed
    member_id: int


def check_password(password: str, *, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid(
            "a password needs at least %(min)s characters",
            field=field,
            params={"min": MIN_PASSWORD},
        )
    if len(password) > 1000:
        raise Invalid("a password can have at most 1000 characters", field=field)
    return password


async def _wait_left(conn: AsyncConnection, keys: list[str], now: datetime) -> float:
    rows = await conn.execute(
        select(login_attempts.c.locked_until).where(login_attempts.c.key.in_(keys))
    )
    waits = [(r.locked_until - now).total_seconds() for r in rows if r.locked_until]
    return float(max([0.0, *waits]))


async def _note_failure(conn: AsyncConnection, key: str, free: int, now: datetime) -> None:
    row = (await conn.execute(select(login_attempts).where(login_attempts.c.key == key))).first()
    failures = 1
    if row is not None and now - row.last_failure_at < _FAILURE_MEMORY:
        failures = row.failures + 1
    locked_until = None
    if failures >= free:
        wait = min(_FIRST_WAIT_S * 2 ** (failures - free), _MAX_WAIT_S)
        locked_until = now + timedelta(seconds=wait)
    values = {"failures": failures, "last_failure_at": now, "locked_until": locked_until}
    if row is None:
        await conn.execute(login_attempts.insert().values(key=key, **values))
    else:
        await conn.execute(
            update(login_attempts).where(login_attempts.c.key == key).values(**values)
        )


async def log_in(db: Database, *, email: str, password: str, client: str) -> NewSession:
    """Check a password and open a session; ``Throttled`` after repeated failures.

    An address in several workspaces signs in to the one whose password matches
    (the oldest membership first).
    """
    email = email.strip().lower()
    now = utcnow()
    keys = {"email": f"email:{email}"[:300], "client": f"client:{client}"[:300]}
    async with db.read() as conn:
        wait = await _wait_left(conn, list(keys.values()), now)
        if wait > 0:
            raise Throttled(
                "too many failed sign-ins; try again in %(seconds)s seconds",
                params={"seconds": int(wait) + 1},
            )
        rows = (
            await conn.execute(
                select(members.c.id, members.c.password_hash)
                .where(members.c.email == email)
                .order_by(members.c.id)
            )
        ).all()
    member_id = next(
        (r.id for r in rows if r.password_hash and verify_password(r.password_hash, password)),
        None,
    )
    async with db.write() as conn:
        if member_id is None:
            for kind, key in keys.items():
                await _note_failure(conn, key, _FREE_FAILURES[kind], now)
        else:
            await conn.execute(delete(login_attempts).where(login_attempts.c.key == keys["email"]))
    if member_id is None:
        raise Invalid("the e-mail address or the password is wrong", field="password")
    return await open_session(db, member_id=member_id)


async def open_session(db: Database, *, member_id: int) -> NewSession:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(
            sessions.insert().values(
                token_hash=hash_api_token(token),
                member_id=member_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + timedelta(days=SESSION_DAYS),
            )
        )
        # Expired sessions of anyone are cleared on the way (cheap: few rows per login).
        await conn.execute(delete(sessions).where(sessions.c.expires_at < now))
    return NewSession(token=token, member_id=member_id)


async def session_member(db: Database, token: str) -> SessionMember | None:
    """The member behind a session cookie, or None when unknown or expired."""
    if not token or len(token) > 256:
        return None
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    sessions.c.id,
                    sessions.c.csrf_token,
                    sessions.c.expires_at,
                    members.c.id.label("member_id"),
                    members.c.workspace_id,
                    members.c.role,
                    members.c.name,
                    members.c.email,
                    members.c.locale,
                    workspaces.c.name.label("workspace_name"),
                    workspaces.c.settings,
                )
                .join(members, members.c.id == sessions.c.member_id)
                .join(workspaces, workspaces.c.id == members.c.workspace_id)
                .where(sessions.c.token_hash == hash_api_token(token))
            )
        ).first()
    if row is None or row.expires_at < utcnow():
        return None
    return SessionMember(
        session_id=row.id,
        member_id=row.member_id,
        workspace_id=row.workspace_id,
        workspace_name=row.workspace_name,
        role=Role(row.role),
        name=row.name,
        email=row.email,
        locale=row.locale if row.locale in LOCALES else "en",
        csrf_token=row.csrf_token,
        timezone=str(row.settings.get("timezone") or "UTC"),
    )


async def log_out(db: Database, *, session_id: int) -> None:
    async with db.write() as conn:
        await conn.execute(delete(sessions).where(sessions.c.id == session_id))


async def change_password(db: Database, *, member: SessionMember, current: str, new: str) -> None:
    """Set a new password and end every other session of this member."""
    check_password(new, field="new_password")
    async with db.read() as conn:
        stored = await conn.scalar(
            select(members.c.password_hash).where(members.c.id == member.member_id)
        )
    if not stored or not verify_password(stored, current):
        raise Invalid("the current password is wrong", field="current_password")
    async with db.write() as conn:
        await conn.execute(
            update(members)
            .where(members.c.id == member.member_id)
            .values(password_hash=hash_password(new))
        )
        await conn.execute(
            delete(sessions)
            .where(sessions.c.member_id == member.member_id)
            .where(sessions.c.id != member.session_id)
        )


async def set_locale(db: Database, *, member: SessionMember, locale: str) -> None:
    if locale not in LOCALES:
        raise Invalid(f"language must be one of {', '.join(LOCALES)}", field="locale")
    async with db.write() as conn:
        await conn.execute(
            update(members).where(members.c.id == member.member_id).values(locale=locale)
        )


async def needs_setup(db: Database) -> bool:
    """True while no member can sign in: the console then offers the first-run setup."""
    async with db.read() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(members).where(members.c.password_hash.is_not(None))
        )
    return not count


async def set_up_owner(
    db: Database,
    *,
    workspace_name: str,
    name: str,
    email: str,
    password: str,
    sandbox: bool,
) -> NewSession:
    """The first owner and workspace of an installation (only while none can sign in)."""
    workspace_name = workspace_name.strip()
    if not workspace_name or len(workspace_name) > 200:
        raise Invalid("give the business a name (at most 200 characters)", field="workspace")
    if not ws.EMAIL.match(email.strip()):
        raise Invalid("enter an e-mail address such as ana@example.com", field="email")
    check_password(password)
    if not await needs_setup(db):
        raise Conflict("this installation is set up already; sign in instead")
    slug = re.sub(r"[^a-z0-9]+", "-", workspace_name.lower()).strip("-")[:40] or "workspace"
    async with db.read() as conn:
        taken = await conn.scalar(select(func.count()).where(workspaces.c.slug == slug))
    if taken:
        slug = f"{slug}-{secrets.token_hex(3)}"
    workspace_id = await ws.create_workspace(db, slug=slug, name=workspace_name)
    member_id = await ws.create_member(
        db,
        workspace_id=workspace_id,
        email=email.strip(),
        role=Role.OWNER,
        name=name.strip() or None,
        password=password,
    )
    if sandbox:
        await create_channel(db, actor=system_actor(workspace_id), kind="sandbox", name="Sandbox")
    return await open_session(db, member_id=member_id)
