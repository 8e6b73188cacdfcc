"""WhatsApp-only use cases: template sync, business profile, media upload, growth links."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import segno
from sqlalchemy import select

from rundfunk.channels.whatsapp import payload
from rundfunk.core import errors
from rundfunk.db.session import Database
from rundfunk.db.tables import topics
from rundfunk.services import audit, templates
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channel_config import wa_digits
from rundfunk.services.channels import require_kind
from rundfunk.services.errors import Conflict, Invalid, NotFound, Upstream
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.workspaces import get_settings

PROFILE_LIMITS = {"about": 139, "address": 256, "description": 256, "email": 128}
VERTICALS = frozenset(
    {
        "UNDEFINED",
        "OTHER",
        "AUTO",
        "BEAUTY",
        "APPAREL",
        "EDU",
        "ENTERTAIN",
        "EVENT_PLAN",
        "FINANCE",
        "GROCERY",
        "GOVT",
        "HOTEL",
        "HEALTH",
        "NONPROFIT",
        "PROF_SERVICES",
        "RETAIL",
        "TRAVEL",
        "RESTAURANT",
        "NOT_A_BIZ",
    }
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _upstream(exc: errors.ChannelError) -> Upstream:
    return Upstream(f"WhatsApp answered: {exc.reason}")


async def sync_templates(
    db: Database, registry: ChannelRegistry, *, actor: Actor, channel_id: int
) -> int:
    """Fetch every template of the business account and store the current list."""
    actor.require(Role.EDITOR)
    await require_kind(db, actor=actor, channel_id=channel_id, kind="whatsapp")
    channel = await registry.whatsapp(channel_id)
    try:
        found = await channel.templates()
    except errors.ChannelError as exc:
        raise _upstream(exc) from exc
    return await templates.store_synced(
        db, workspace_id=actor.workspace_id, channel_id=channel_id, found=found
    )


async def get_profile(
    db: Database, registry: ChannelRegistry, *, actor: Actor, channel_id: int
) -> dict[str, Any]:
    await require_kind(db, actor=actor, channel_id=channel_id, kind="whatsapp")
    channel = await registry.whatsapp(channel_id)
    try:
        profile = await channel.client.profile()
    except errors.ChannelError as exc:
        raise _upstream(exc) from exc
    settings = await get_settings(db, actor.workspace_id)
    return {
        "profile": profile,
        "imprint_url": settings.get("imprint_url") or None,
        "privacy_url": settings.get("privacy_url") or None,
    }


def check_profile(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The profile fields as WhatsApp accepts them, or Invalid naming the first problem."""
    checked: dict[str, Any] = {}
    for key, limit in PROFILE_LIMITS.items():
        value = fields.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit:
            raise Invalid(f"{key}: text of at most {limit} characters")
        checked[key] = value
    if "email" in checked and checked["email"] and not _EMAIL.match(checked["email"]):
        raise Invalid("email: not an e-mail address")
    vertical = fields.get("vertical")
    if vertical is not None:
        if vertical not in VERTICALS:
            raise Invalid(f"vertical: one of {', '.join(sorted(VERTICALS))}")
        checked["vertical"] = vertical
    websites = fields.get("websites")
    if websites is not None:
        if not isinstance(websites, list) or len(websites) > 2:
            raise Invalid("websites: at most 2 URLs (WhatsApp shows no more)")
        for site in websites:
            if not isinstance(site, str) or not site.startswith(("https://", "http://")):
                raise Invalid(f"websites: {site!r} is not an http(s) URL")
            if len(site) > 256:
                raise Invalid("websites: each URL at most 256 characters")
        checked["websites"] = websites
    return checked


async def update_profile(
    db: Database,
    registry: ChannelRegistry,
    *,
    actor: Actor,
    channel_id: int,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """Update the number's business profile. Without ``websites`` the workspace's imprint
    and privacy-policy URLs are published there (WhatsApp has no imprint field)."""
    actor.require(Role.ADMIN)
    await require_kind(db, actor=actor, channel_id=channel_id, kind="whatsapp")
    checked = check_profile(fields)
    if "websites" not in checked:
        settings = await get_settings(db, actor.workspace_id)
        sites = [settings.get("imprint_url"), settings.get("privacy_url")]
        checked["websites"] = [s for s in sites if s][:2]
        if not checked["websites"]:
            del checked["websites"]
    channel = await registry.whatsapp(channel_id)
    try:
        await channel.client.update_profile(checked)
    except errors.ChannelError as exc:
        raise _upstream(exc) from exc
    async with db.write() as conn:
        await audit.record(
            conn,
            actor,
            "channel.profile_update",
            target_type="channel",
            target_id=channel_id,
            details={"fields": sorted(checked)},
        )
    return await get_profile(db, registry, actor=actor, channel_id=channel_id)


async def upload_media(
    db: Database,
    registry: ChannelRegistry,
    *,
    actor: Actor,
    channel_id: int,
    data: bytes,
    mime_type: str,
    filename: str,
) -> dict[str, Any]:
    """Upload a file to WhatsApp (kept there 30 days); send it later by its media id."""
    actor.require(Role.AGENT)
    await require_kind(db, actor=actor, channel_id=channel_id, kind="whatsapp")
    kind = payload.media_kind_for(mime_type)
    limit = payload.MEDIA_LIMITS[kind]
    if not data:
        raise Invalid("file: empty")
    if len(data) > limit:
        raise Invalid(
            f"file: {len(data)} bytes is more than WhatsApp's {limit // 1024} KiB for {kind} files"
            if limit < 1024 * 1024
            else f"file: {len(data)} bytes is more than WhatsApp's "
            f"{limit // (1024 * 1024)} MB for {kind} files"
        )
    channel = await registry.whatsapp(channel_id)
    try:
        media_id = await channel.client.upload_media(data, mime_type=mime_type, filename=filename)
    except errors.ChannelError as exc:
        raise _upstream(exc) from exc
    return {"media_id": media_id, "media_kind": kind, "mime_type": mime_type, "size": len(data)}


async def growth_links(db: Database, *, actor: Actor, channel_id: int) -> list[dict[str, Any]]:
    """Click-to-chat links: one for the whole channel, one per topic (``START <key>``)."""
    channel = await require_kind(db, actor=actor, channel_id=channel_id, kind="whatsapp")
    number = wa_digits(channel["config"].get("display_phone_number"))
    if number is None:
        raise Conflict(
            "the channel has no display_phone_number: set it (config.display_phone_number) "
            "to build click-to-chat links"
        )
    async with db.read() as conn:
        rows = await conn.execute(
            select(topics.c.key, topics.c.name)
            .where(topics.c.workspace_id == actor.workspace_id)
            .order_by(topics.c.key)
        )
        found = [(key, name) for key, name in rows]
    items = [{"topic": None, "name": "All news", "text": "START"}]
    items += [{"topic": key, "name": name, "text": f"START {key}"} for key, name in found]
    for item in items:
        item["url"] = f"https://wa.me/{number}?text={quote(str(item['text']))}"
    return items


async def qr_code(
    db: Database, *, actor: Actor, channel_id: int, topic: str | None, kind: str
) -> bytes:
    """The click-to-chat link of the channel (or one topic) as a PNG or SVG QR code."""
    links = await growth_links(db, actor=actor, channel_id=channel_id)
    link = next((item for item in links if item["topic"] == topic), None)
    if link is None:
        raise NotFound(f"no topic {topic!r}")
    code = segno.make(str(link["url"]), error="m")
    buffer = io.BytesIO()
    if kind == "svg":
        code.save(buffer, kind="svg", scale=8, border=2, xmldecl=True)
    else:
        code.save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()
