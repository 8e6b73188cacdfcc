"""Message templates: synced from the platform, listed, and checked at compose time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import TemplateStatusUpdate
from rundfunk.core.templates import TemplateError, TemplateShape, check
from rundfunk.db.session import Database
from rundfunk.db.tables import channels, templates
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, system_actor
from rundfunk.services.errors import Invalid, NotFound

_PUBLIC = (
    templates.c.name,
    templates.c.language,
    templates.c.category,
    templates.c.status,
    templates.c.components,
    templates.c.updated_at,
)


def _item(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """One template of the Graph API's list, or None when it lacks what we need."""
    name, language = raw.get("name"), raw.get("language")
    if not isinstance(name, str) or not isinstance(language, str) or not name or not language:
        return None
    components = raw.get("components")
    return {
        "name": name[:512],
        "language": language[:16],
        "category": str(raw.get("category") or "UNKNOWN")[:32],
        "status": str(raw.get("status") or "UNKNOWN")[:32],
        "external_id": str(raw["id"])[:64] if raw.get("id") is not None else None,
        "components": [c for c in components if isinstance(c, Mapping)]
        if isinstance(components, list)
        else [],
    }


async def store_synced(
    db: Database, *, workspace_id: int, channel_id: int, found: Sequence[Mapping[str, Any]]
) -> int:
    """Replace the channel's templates with the platform's current list."""
    items = {(i["name"], i["language"]): i for i in filter(None, map(_item, found))}
    now = utcnow()
    async with db.write() as conn:
        # One sync of a channel at a time (the hourly one and a click can meet): on
        # PostgreSQL two interleaved delete-then-insert runs both inserted the list and
        # broke the unique key. (SQLite's BEGIN IMMEDIATE already serializes them.)
        await conn.execute(
            select(channels.c.id).where(channels.c.id == channel_id).with_for_update()
        )
        await conn.execute(delete(templates).where(templates.c.channel_id == channel_id))
        if items:
            await conn.execute(
                templates.insert(),
                [
                    {
                        **item,
                        "workspace_id": workspace_id,
                        "channel_id": channel_id,
                        "updated_at": now,
                    }
                    for item in items.values()
                ],
            )
        await audit.record(
            conn,
            system_actor(workspace_id),
            "templates.sync",
            target_type="channel",
            target_id=channel_id,
            details={"templates": len(items)},
        )
    return len(items)


async def list_templates(db: Database, *, actor: Actor, channel_id: int) -> list[dict[str, Any]]:
    async with db.read() as conn:
        owned = await conn.scalar(
            select(channels.c.id).where(
                channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
            )
        )
        if owned is None:
            raise NotFound(f"no channel {channel_id}")
        rows = await conn.execute(
            select(*_PUBLIC)
            .where(templates.c.channel_id == channel_id)
            .order_by(templates.c.name, templates.c.language)
        )
        return [
            {**dict(r._mapping), "parameters": _parameters(TemplateShape.of(r.components))}
            for r in rows
        ]


def _parameters(shape: TemplateShape) -> dict[str, Any]:
    return {
        "body": shape.body_params,
        "header": shape.header_params,
        "header_format": shape.header_format,
        "url_buttons": len(shape.url_buttons),
    }


async def sendable_names(conn: AsyncConnection, channel_id: int) -> list[str]:
    """Names (with language) of the channel's approved templates, for error messages."""
    rows = await conn.execute(
        select(templates.c.name, templates.c.language)
        .where(templates.c.channel_id == channel_id, templates.c.status == "APPROVED")
        .order_by(templates.c.name)
    )
    return [f"{name} ({language})" for name, language in rows]


async def resolve(
    conn: AsyncConnection, *, channel_id: int, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """Check a requested template against the synced one; returns what the worker needs.

    ``spec``: name, language, body_parameters, header_parameters?, button_parameters?,
    header_media?. The result adds the header format and URL button indexes, so that
    sending never needs the templates table.
    """
    row = (
        await conn.execute(
            select(templates.c.status, templates.c.components).where(
                templates.c.channel_id == channel_id,
                templates.c.name == spec["name"],
                templates.c.language == spec["language"],
            )
        )
    ).first()
    if row is None:
        known = await sendable_names(conn, channel_id)
        raise Invalid(
            f"template: no template {spec['name']!r} in language {spec['language']!r} on this "
            "channel (sync templates first); approved: " + (", ".join(known) or "none")
        )
    shape = TemplateShape.of(row.components)
    try:
        # Parameters are personalization templates: check their count and emptiness here;
        # each is rendered per contact when sent.
        check(
            shape,
            status=row.status,
            body_parameters=list(spec.get("body_parameters") or []),
            header_parameters=list(spec.get("header_parameters") or []),
            button_parameters=list(spec.get("button_parameters") or []),
            header_media=spec.get("header_media"),
        )
    except TemplateError as exc:
        raise Invalid(f"template {spec['name']!r}: {exc}") from exc
    return {
        "name": spec["name"],
        "language": spec["language"],
        "body_parameters": list(spec.get("body_parameters") or []),
        "header_parameters": list(spec.get("header_parameters") or []),
        "button_parameters": list(spec.get("button_parameters") or []),
        "header_media": spec.get("header_media"),
        "header_format": shape.header_format,
        "url_buttons": list(shape.url_buttons),
        "body": shape.body,
    }


async def apply_status(
    conn: AsyncConnection, *, channel_id: int, event: TemplateStatusUpdate
) -> None:
    """The platform paused, disabled or re-approved a template (webhook)."""
    await conn.execute(
        update(templates)
        .where(
            templates.c.channel_id == channel_id,
            templates.c.name == event.name,
            templates.c.language == event.language,
        )
        .values(status=event.status.upper()[:32], updated_at=utcnow())
    )
