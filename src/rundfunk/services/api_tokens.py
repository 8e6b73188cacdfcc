"""API tokens: list, create, revoke and rotate them, and who a bearer token stands for.

A token is shown once, when it is made; only its sha256 is stored (``secrets``), with
its first characters as a prefix to recognise it in a listing. Role rules: admins and
owners manage the tokens of their workspace, and nobody makes, revokes or rotates a
token with a role above their own (rotating hands out the new secret, so an admin
rotating an owner's token would become an owner).

A revoked token is refused from the next request on, on every node: each request
looks the token up in the database (one indexed read), so there is no per-process
cache that could outlive a revoke. When a token was last used is written at most
once a minute per token (``mark_used``, batched by ``web.token_use``), not on every
request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import api_tokens
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Forbidden, Invalid, NotFound
from rundfunk.services.secrets import hash_api_token, new_api_token

MAX_NAME = 200
PREFIX_LENGTH = 10  # "rf_" and 7 characters of the secret: enough to tell tokens apart


@dataclass(frozen=True)
class TokenInfo:
    """One token as listed: never its secret."""

    id: int
    name: str
    role: Role
    prefix: str
    member_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is shown now and never again."""

    token: TokenInfo
    secret: str
    replaces: int | None = None  # the id of the token a rotation revoked


@dataclass(frozen=True)
class TokenAuth:
    """Who a bearer token stands for, and when it was last marked as used."""

    actor: Actor
    token_id: int
    last_used_at: datetime | None


_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.role,
    api_tokens.c.prefix,
    api_tokens.c.member_id,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
)


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        member_id=row.member_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Invalid(
            f"give the token a name (1 to {MAX_NAME} characters), e.g. what uses it",
            field="name",
        )
    # NUL, control characters and lone surrogates: nothing a person names a token with,
    # and PostgreSQL or UTF-8 could not store them.
    if not all(char.isprintable() for char in name):
        raise Invalid("the name may not contain control characters", field="name")
    return name


def _role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(
            f"role must be one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def _may_hold(actor: Actor, role: Role, verb: str) -> None:
    """Nobody hands out or takes over a token with a role above their own."""
    if role.rank > actor.role.rank:
        raise Forbidden(
            f"you may not {verb} a token with the role {role.value}: "
            f"it is above your own ({actor.role.value})",
            field="role",
        )


async def list_tokens(
    db: Database, *, actor: Actor, include_revoked: bool = False
) -> list[TokenInfo]:
    """The workspace's tokens, newest first (admins and owners)."""
    actor.require(Role.ADMIN)
    query = (
        select(*_COLUMNS)
        .where(api_tokens.c.workspace_id == actor.workspace_id)
        .order_by(api_tokens.c.id.desc())
    )
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    async with db.read() as conn:
        return [_info(row) for row in await conn.execute(query)]


async def _insert(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    name: str,
    role: Role,
    member_id: int | None,
    now: datetime,
) -> NewToken:
    secret = new_api_token()
    result = await conn.execute(
        api_tokens.insert().values(
            workspace_id=workspace_id,
            member_id=member_id,
            name=name,
            role=role.value,
            prefix=secret[:PREFIX_LENGTH],
            token_hash=hash_api_token(secret),
            created_at=now,
        )
    )
    assert result.inserted_primary_key is not None
    info = TokenInfo(
        id=int(result.inserted_primary_key[0]),
        name=name,
        role=role,
        prefix=secret[:PREFIX_LENGTH],
        member_id=member_id,
        created_at=now,
        last_used_at=None,
        revoked_at=None,
    )
    return NewToken(token=info, secret=secret)


async def create_token(
    db: Database, *, actor: Actor, name: str, role: str | Role = Role.EDITOR
) -> NewToken:
    """A new token of the actor's workspace, with at most the actor's role."""
    actor.require(Role.ADMIN)
    chosen = _role(role)
    _may_hold(actor, chosen, "create")
    name = check_name(name)
    async with db.write() as conn:
        made = await _insert(
            conn,
            workspace_id=actor.workspace_id,
            name=name,
            role=chosen,
            member_id=actor.member_id,
            now=utcnow(),
        )
        await audit.record(
            conn,
            actor,
            "token.create",
            target_type="api_token",
            target_id=made.token.id,
            details={"role": chosen.value, "prefix": made.token.prefix},
        )
    return made


async def _active(conn: AsyncConnection, actor: Actor, token_id: int) -> TokenInfo:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                api_tokens.c.id == token_id,
                api_tokens.c.workspace_id == actor.workspace_id,
                api_tokens.c.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no active API token {token_id}")
    return _info(row)


async def revoke_token(db: Database, *, actor: Actor, token_id: int) -> TokenInfo:
    """Revoke a token: every request with it is refused (401) from now on."""
    actor.require(Role.ADMIN)
    now = utcnow()
    async with db.write() as conn:
        token = await _active(conn, actor, token_id)
        _may_hold(actor, token.role, "revoke")
        await conn.execute(
            update(api_tokens).where(api_tokens.c.id == token.id).values(revoked_at=now)
        )
        await audit.record(
            conn,
            actor,
            "token.revoke",
            target_type="api_token",
            target_id=token.id,
            details={"role": token.role.value, "prefix": token.prefix},
        )
    return replace(token, revoked_at=now)


async def rotate_token(db: Database, *, actor: Actor, token_id: int) -> NewToken:
    """A new secret for a token (same name, role and member); the old one is revoked
    in the same transaction."""
    actor.require(Role.ADMIN)
    now = utcnow()
    async with db.write() as conn:
        old = await _active(conn, actor, token_id)
        _may_hold(actor, old.role, "rotate")
        await conn.execute(
            update(api_tokens).where(api_tokens.c.id == old.id).values(revoked_at=now)
        )
        made = await _insert(
            conn,
            workspace_id=actor.workspace_id,
            name=old.name,
            role=old.role,
            member_id=old.member_id,
            now=now,
        )
        await audit.record(
            conn,
            actor,
            "token.rotate",
            target_type="api_token",
            target_id=made.token.id,
            details={"replaces": old.id, "role": old.role.value, "prefix": made.token.prefix},
        )
    return NewToken(token=made.token, secret=made.secret, replaces=old.id)


async def authenticate(db: Database, secret: str) -> TokenAuth | None:
    """Who a bearer token stands for, or None when it is unknown or revoked.

    Read from the database on every request (one lookup by the unique hash): a revoke
    committed by any process is seen by the next request everywhere.
    """
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    api_tokens.c.id,
                    api_tokens.c.workspace_id,
                    api_tokens.c.role,
                    api_tokens.c.member_id,
                    api_tokens.c.last_used_at,
                )
                .where(api_tokens.c.token_hash == hash_api_token(secret))
                .where(api_tokens.c.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        return None
    actor = Actor(
        workspace_id=row.workspace_id,
        role=Role(row.role),
        label=f"token:{row.id}",
        member_id=row.member_id,
    )
    return TokenAuth(actor=actor, token_id=row.id, last_used_at=row.last_used_at)


async def mark_used(db: Database, *, token_ids: Iterable[int], at: datetime) -> int:
    """Note that these tokens were used at ``at``: one statement for the batch. A time
    is never moved back (a late batch after a newer one)."""
    ids = sorted(set(token_ids))
    if not ids:
        return 0
    async with db.write() as conn:
        done = await conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id.in_(ids))
            .where((api_tokens.c.last_used_at.is_(None)) | (api_tokens.c.last_used_at < at))
            .values(last_used_at=at)
        )
    return int(done.rowcount or 0)
