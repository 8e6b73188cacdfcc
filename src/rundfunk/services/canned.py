"""Canned responses: the team's ready answers, inserted into a reply by their short code.

Every member (agent and up) may use them and may manage them: they are the team's
shared answers, like a shared notebook, and each change is in the audit log. Short
codes are unique per workspace, lowercase letters, digits, ``-`` and ``_``; a leading
``/`` (as typed in the reply box) is dropped.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import canned_responses
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Invalid, NotFound

MAX_CODE = 64
MAX_TEXT = 4096
_CODE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PUBLIC = (
    canned_responses.c.id,
    canned_responses.c.short_code,
    canned_responses.c.text,
    canned_responses.c.created_at,
)


def clean_code(value: str) -> str:
    """The short code as stored: trimmed, lowercase, without the typed ``/``."""
    code = value.strip().removeprefix("/").strip().lower()
    if not code:
        raise Invalid("the short code must not be empty", field="short_code")
    if len(code) > MAX_CODE:
        raise Invalid(
            "the short code is longer than %(max)s characters",
            field="short_code",
            params={"max": MAX_CODE},
        )
    if not _CODE.fullmatch(code):
        raise Invalid(
            "the short code may hold letters a-z, digits, '-' and '_' only (like 'opening-hours')",
            field="short_code",
        )
    return code


def clean_text(value: str) -> str:
    text = value.strip()
    if not text:
        raise Invalid("the text must not be empty", field="text")
    if len(text) > MAX_TEXT:
        raise Invalid(
            "the text is longer than %(max)s characters", field="text", params={"max": MAX_TEXT}
        )
    return text


async def list_canned(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """The workspace's canned responses, by short code."""
    actor.require(Role.AGENT)
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_PUBLIC)
            .where(canned_responses.c.workspace_id == actor.workspace_id)
            .order_by(canned_responses.c.short_code)
        )
        return [dict(r._mapping) for r in rows]


async def _get(conn: AsyncConnection, actor: Actor, canned_id: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(*_PUBLIC).where(
                canned_responses.c.id == canned_id,
                canned_responses.c.workspace_id == actor.workspace_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no canned response {canned_id}")
    return dict(row._mapping)


async def get_canned(db: Database, *, actor: Actor, canned_id: int) -> dict[str, Any]:
    actor.require(Role.AGENT)
    async with db.read() as conn:
        return await _get(conn, actor, canned_id)


async def _taken(conn: AsyncConnection, actor: Actor, code: str, other_than: int = 0) -> None:
    found = await conn.scalar(
        select(canned_responses.c.id).where(
            canned_responses.c.workspace_id == actor.workspace_id,
            canned_responses.c.short_code == code,
            canned_responses.c.id != other_than,
        )
    )
    if found is not None:
        raise Conflict(
            "the short code /%(code)s is taken already", field="short_code", params={"code": code}
        )


async def create_canned(
    db: Database, *, actor: Actor, short_code: str, text: str
) -> dict[str, Any]:
    actor.require(Role.AGENT)
    code, body = clean_code(short_code), clean_text(text)
    async with db.write() as conn:
        await _taken(conn, actor, code)
        result = await conn.execute(
            canned_responses.insert().values(
                workspace_id=actor.workspace_id, short_code=code, text=body, created_at=utcnow()
            )
        )
        assert result.inserted_primary_key is not None
        canned_id = int(result.inserted_primary_key[0])
        await audit.record(
            conn,
            actor,
            "canned.create",
            target_type="canned_response",
            target_id=canned_id,
            details={"short_code": code},
        )
        return await _get(conn, actor, canned_id)


async def update_canned(
    db: Database, *, actor: Actor, canned_id: int, short_code: str, text: str
) -> dict[str, Any]:
    actor.require(Role.AGENT)
    code, body = clean_code(short_code), clean_text(text)
    async with db.write() as conn:
        await _get(conn, actor, canned_id)
        await _taken(conn, actor, code, other_than=canned_id)
        await conn.execute(
            update(canned_responses)
            .where(canned_responses.c.id == canned_id)
            .values(short_code=code, text=body)
        )
        await audit.record(
            conn,
            actor,
            "canned.update",
            target_type="canned_response",
            target_id=canned_id,
            details={"short_code": code},
        )
        return await _get(conn, actor, canned_id)


async def delete_canned(db: Database, *, actor: Actor, canned_id: int) -> None:
    actor.require(Role.AGENT)
    async with db.write() as conn:
        found = await _get(conn, actor, canned_id)
        await conn.execute(delete(canned_responses).where(canned_responses.c.id == canned_id))
        await audit.record(
            conn,
            actor,
            "canned.delete",
            target_type="canned_response",
            target_id=canned_id,
            details={"short_code": found["short_code"]},
        )
