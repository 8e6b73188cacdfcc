"""Workspaces (one per business), their settings, members and API tokens."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from rundfunk.db.session import Database
from rundfunk.db.tables import api_tokens, members, workspaces
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.api_tokens import authenticate
from rundfunk.services.errors import Conflict, Invalid, NotFound
from rundfunk.services.secrets import hash_api_token, hash_password, new_api_token

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

DEFAULT_SETTINGS: dict[str, Any] = {
    "timezone": "UTC",
    "privacy_url": "",
    "imprint_url": "",
    "welcome_text": (
        "Welcome to {workspace}! You will now receive our news. "
        "Privacy policy: {privacy_url}. Imprint: {imprint_url}. "
        "Send STOP at any time to unsubscribe."
    ),
    "goodbye_text": (
        "You have unsubscribed from {workspace} and will get no more news. "
        "Send START to subscribe again."
    ),
    "help_text": (
        "{workspace}: send START to subscribe, START <topic> for one topic, STOP to "
        "unsubscribe. Anything else you write reaches our team privately."
    ),
}


MAX_NAME = 200
MAX_URL = 2000
MAX_TEXT = 4096  # WhatsApp's limit for a text message body
# What the confirmation texts may name: replaced when the text is sent.
PLACEHOLDERS = ("workspace", "privacy_url", "imprint_url")
TEXTS = ("welcome_text", "goodbye_text", "help_text")


@cache
def timezones() -> frozenset[str]:
    """The IANA time zones this machine knows (Europe/Berlin, UTC, …)."""
    return frozenset(available_timezones())


def _check_url(key: str, value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if len(value) > MAX_URL or parts.scheme not in {"http", "https"} or not parts.netloc:
        raise Invalid(
            f"{key}: an http:// or https:// address such as https://example.com/{key[:-4]}, "
            "or empty",
            field=key,
        )
    if any(char.isspace() for char in value):
        raise Invalid(f"{key}: an address has no spaces", field=key)
    return value


def _check_text(key: str, value: str) -> str:
    if not value.strip():
        raise Invalid(f"{key}: must not be empty", field=key)
    if len(value) > MAX_TEXT:
        raise Invalid(f"{key}: at most {MAX_TEXT} characters", field=key)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError:
        raise Invalid(
            f"{key}: a lone {{ or }}; placeholders look like {{workspace}}", field=key
        ) from None
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        raise Invalid(
            f"{key}: unknown placeholder {{{unknown[0]}}}; available: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
            field=key,
        )
    return value


def check_settings(changes: Mapping[str, str]) -> dict[str, str]:
    """The changed settings as stored, or Invalid naming the field (``field=``)."""
    unknown = set(changes) - (set(DEFAULT_SETTINGS) | {"name"})
    if unknown:
        raise Invalid(f"unknown settings: {', '.join(sorted(unknown))}")
    checked: dict[str, str] = {}
    for key, raw in changes.items():
        if not isinstance(raw, str):
            raise Invalid(f"{key}: must be text", field=key)
        if key == "name":
            value = raw.strip()
            if not value or len(value) > MAX_NAME:
                raise Invalid(f"name: 1 to {MAX_NAME} characters", field=key)
        elif key == "timezone":
            value = raw.strip()
            if value not in timezones():
                raise Invalid(
                    f"timezone: {value!r} is not a time zone such as Europe/Berlin", field=key
                )
        elif key.endswith("_url"):
            value = _check_url(key, raw)
        else:
            value = _check_text(key, raw)
        checked[key] = value
    return checked


async def create_workspace(db: Database, *, slug: str, name: str | None = None) -> int:
    if not SLUG.match(slug):
        raise Invalid("slug must be 1-63 lower-case letters, digits or dashes")
    try:
        async with db.write() as conn:
            result = await conn.execute(
                workspaces.insert().values(
                    slug=slug,
                    name=name or slug,
                    settings=dict(DEFAULT_SETTINGS),
                    created_at=utcnow(),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"workspace {slug!r} already exists") from exc
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def workspace_id_by_slug(db: Database, slug: str) -> int:
    async with db.read() as conn:
        found = await conn.scalar(select(workspaces.c.id).where(workspaces.c.slug == slug))
    if found is None:
        raise NotFound(f"no workspace {slug!r}")
    return int(found)


async def get_settings(db: Database, workspace_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(workspaces.c.name, workspaces.c.settings).where(
                    workspaces.c.id == workspace_id
                )
            )
        ).one()
    return {**DEFAULT_SETTINGS, **row.settings, "name": row.name}


async def update_settings(
    db: Database, *, actor: Actor, changes: Mapping[str, str]
) -> dict[str, Any]:
    actor.require(Role.ADMIN)
    changes = check_settings(changes)
    async with db.write() as conn:
        row = (
            await conn.execute(
                select(workspaces.c.settings).where(workspaces.c.id == actor.workspace_id)
            )
        ).one()
        settings = {**row.settings, **{k: v for k, v in changes.items() if k != "name"}}
        values: dict[str, Any] = {"settings": settings}
        if "name" in changes:
            values["name"] = changes["name"]
        await conn.execute(
            update(workspaces).where(workspaces.c.id == actor.workspace_id).values(**values)
        )
        await audit.record(conn, actor, "workspace.settings", details={"fields": sorted(changes)})
    return await get_settings(db, actor.workspace_id)


async def create_member(
    db: Database,
    *,
    workspace_id: int,
    email: str,
    role: Role,
    name: str | None = None,
    password: str | None = None,
) -> int:
    if not EMAIL.match(email):
        raise Invalid(f"{email!r} is not an e-mail address")
    if password is not None and len(password) < 8:
        raise Invalid("password must have at least 8 characters")
    try:
        async with db.write() as conn:
            result = await conn.execute(
                members.insert().values(
                    workspace_id=workspace_id,
                    email=email.lower(),
                    name=name or email.split("@")[0],
                    role=role.value,
                    password_hash=hash_password(password) if password else None,
                    created_at=utcnow(),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"member {email!r} already exists in this workspace") from exc
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def list_members(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Members and their e-mail addresses: personal data, so for admins only."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        rows = await conn.execute(
            select(members.c.id, members.c.email, members.c.name, members.c.role)
            .where(members.c.workspace_id == actor.workspace_id)
            .order_by(members.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def create_token(
    db: Database, *, workspace_id: int, role: Role, name: str = "api", member_id: int | None = None
) -> str:
    """Create an API token and return it. Only its hash is stored: show it once."""
    token = new_api_token()
    async with db.write() as conn:
        await conn.execute(
            api_tokens.insert().values(
                workspace_id=workspace_id,
                member_id=member_id,
                name=name,
                role=role.value,
                prefix=token[:10],
                token_hash=hash_api_token(token),
                created_at=utcnow(),
            )
        )
    return token


async def actor_for_token(db: Database, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None when unknown or revoked."""
    found = await authenticate(db, token)
    return None if found is None else found.actor
