"""Connected messenger accounts: create, list, and build live ``Channel`` objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.sandbox import SandboxBehaviour
from rundfunk.core.keywords import KeywordConfig
from rundfunk.core.ratelimit import Rate
from rundfunk.db import changes
from rundfunk.db.broadcast_signals import broadcast_moved
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, channels
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channel_config import WHATSAPP_SETTINGS, split_whatsapp
from rundfunk.services.errors import Conflict, Invalid, NotFound
from rundfunk.services.secrets import SecretBox

KINDS = ("sandbox", "whatsapp")  # telegram registers here when it lands
DEFAULT_THROUGHPUT = {"sandbox": 1000.0, "whatsapp": 80.0}
# Kinds whose platform enforces a customer-service window: free text only this many
# hours after the person's last message (WhatsApp: 24, error 131047 outside it). Other
# kinds may opt in with settings["service_window_hours"], e.g. a sandbox rehearsing it.
FIXED_SERVICE_WINDOW_HOURS: dict[str, float] = {"whatsapp": 24.0}
_PUBLIC = (
    channels.c.id,
    channels.c.kind,
    channels.c.name,
    channels.c.status,
    channels.c.status_reason,
    channels.c.settings,
    channels.c.credentials,
)
# Shown to everyone who may see the channel; secrets never, the verify token to admins.
_SHOWN_SETTINGS = tuple(k for k in WHATSAPP_SETTINGS if k not in {"keywords", "burst"})


def webhook_path(kind: str, channel_id: int) -> str | None:
    """Where the platform posts this channel's webhooks (None: it has none)."""
    return f"/webhooks/{kind}/{channel_id}" if kind != "sandbox" else None


def _public(row: Any, actor: Actor, box: SecretBox | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "status": row.status,
        "status_reason": row.status_reason,
        "webhook_path": webhook_path(row.kind, row.id),
        "config": {},
        "verify_token": None,
    }
    if row.kind == "whatsapp":
        item["config"] = {k: row.settings[k] for k in _SHOWN_SETTINGS if k in row.settings}
        if box is not None and row.credentials and actor.role.rank >= Role.ADMIN.rank:
            item["verify_token"] = box.open(row.credentials).get("verify_token")
    return item


def _check_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        KeywordConfig.from_settings(settings.get("keywords"))
        if kind == "sandbox":
            behaviour = SandboxBehaviour.from_settings(settings)
            shares = behaviour.fail_permanent_share + behaviour.fail_retryable_share
            if not 0 <= shares <= 1:
                raise ValueError("sandbox failure shares must add up to between 0 and 1")
        throughput = float(settings.get("throughput", DEFAULT_THROUGHPUT.get(kind, 80.0)))
        Rate(throughput)
        hours = settings.get("service_window_hours")
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours < 10_000
        ):
            raise ValueError("service_window_hours must be a positive number of hours")
    except (TypeError, ValueError) as exc:
        raise Invalid(f"settings: {exc}") from exc
    return dict(settings)


def service_window(kind: str, settings: Mapping[str, Any]) -> timedelta | None:
    """How long after a person's last message free text may be sent; None: no limit."""
    hours = FIXED_SERVICE_WINDOW_HOURS.get(kind, settings.get("service_window_hours"))
    return None if hours is None else timedelta(hours=float(hours))


async def create_channel(
    db: Database,
    *,
    actor: Actor,
    kind: str,
    name: str,
    settings: Mapping[str, Any] | None = None,
    credentials: Mapping[str, object] | None = None,
    config: Mapping[str, Any] | None = None,
    box: SecretBox | None = None,
) -> dict[str, Any]:
    """Connect a messenger account. ``config`` is the kind's documented configuration
    (for WhatsApp: phone_number_id, waba_id, access_token, app_secret, …); its secrets
    are sealed with ``box`` and never shown again."""
    actor.require(Role.ADMIN)
    if kind not in KINDS:
        raise Invalid(f"unknown channel kind {kind!r}; available: {', '.join(KINDS)}")
    if not name.strip():
        raise Invalid("name must not be empty")
    if kind == "whatsapp":
        if credentials:
            raise Invalid("a WhatsApp channel takes its access token and app secret in config")
        settings, credentials = split_whatsapp({**(settings or {}), **(config or {})})
    elif config:
        settings = {**(settings or {}), **config}
    checked = _check_settings(kind, settings or {})
    if credentials and box is None:
        raise Invalid("credentials need the secret box to be stored encrypted")
    sealed = box.seal(credentials) if credentials and box else None
    async with db.write() as conn:
        result = await conn.execute(
            channels.insert().values(
                workspace_id=actor.workspace_id,
                kind=kind,
                name=name.strip(),
                credentials=sealed,
                settings=checked,
                status="active",
                created_at=utcnow(),
            )
        )
        assert result.inserted_primary_key is not None
        channel_id = int(result.inserted_primary_key[0])
        await audit.record(
            conn, actor, "channel.create", target_type="channel", target_id=channel_id
        )
    return await get_channel(db, actor=actor, channel_id=channel_id, box=box)


async def update_channel(
    db: Database,
    *,
    actor: Actor,
    channel_id: int,
    box: SecretBox,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Rename, reconfigure (e.g. a fresh access token) or re-activate a channel."""
    actor.require(Role.ADMIN)
    if status is not None and status not in {"active", "disabled"}:
        raise Invalid("status must be active or disabled")
    if name is not None and not name.strip():
        raise Invalid("name must not be empty")
    async with db.write() as conn:
        row = (
            await conn.execute(
                select(channels).where(
                    channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no channel {channel_id}")
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name.strip()
        if config:
            if row.kind == "whatsapp":
                current = {**row.settings, **(box.open(row.credentials) if row.credentials else {})}
                settings, credentials = split_whatsapp(config, existing=current)
                settings = _check_settings(row.kind, settings)  # keywords, as on create
                values.update(settings=settings, credentials=box.seal(credentials))
            else:
                values["settings"] = _check_settings(row.kind, {**row.settings, **config})
        if status == "active":
            values.update(status="active", status_reason=None)
        if values:
            await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(**values, version=channels.c.version + 1)
            )
            await changes.channel_changed(conn, channel_id)
            await audit.record(
                conn,
                actor,
                "channel.update",
                target_type="channel",
                target_id=channel_id,
                details={"fields": sorted({*values, *(config or {})} - {"credentials"})},
            )
        if status == "disabled":
            await mark_disabled(conn, actor, channel_id, "disabled by an admin")
    return await get_channel(db, actor=actor, channel_id=channel_id, box=box)


async def list_channels(
    db: Database, *, actor: Actor, box: SecretBox | None = None
) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_PUBLIC)
            .where(channels.c.workspace_id == actor.workspace_id)
            .order_by(channels.c.id)
        )
        return [_public(r, actor, box) for r in rows]


async def get_channel(
    db: Database, *, actor: Actor, channel_id: int, box: SecretBox | None = None
) -> dict[str, Any]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(*_PUBLIC)
                .where(channels.c.id == channel_id)
                .where(channels.c.workspace_id == actor.workspace_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"no channel {channel_id}")
    return _public(row, actor, box)


async def channel_settings(db: Database, *, actor: Actor, channel_id: int) -> dict[str, Any]:
    """The channel's plain settings (keywords, rates; never its secrets), for its edit form."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        found = await conn.scalar(
            select(channels.c.settings).where(
                channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
            )
        )
    if found is None:
        raise NotFound(f"no channel {channel_id}")
    return dict(found)


async def require_kind(db: Database, *, actor: Actor, channel_id: int, kind: str) -> dict[str, Any]:
    """This workspace's channel, which must be of ``kind`` (Conflict otherwise)."""
    channel = await get_channel(db, actor=actor, channel_id=channel_id)
    if channel["kind"] != kind:
        raise Conflict(f"channel {channel_id} is a {channel['kind']} channel, not {kind}")
    return channel


async def disable_channel(db: Database, *, actor: Actor, channel_id: int, reason: str) -> None:
    """Stop a channel by hand: nothing is sent on it until an admin acts again."""
    actor.require(Role.ADMIN)
    async with db.write() as conn:
        found = await conn.scalar(
            select(channels.c.id).where(
                channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
            )
        )
        if found is None:
            raise NotFound(f"no channel {channel_id}")
        await mark_disabled(conn, actor, channel_id, reason)


async def mark_disabled(
    conn: AsyncConnection, actor: Actor, channel_id: int, reason: str
) -> tuple[bool, list[int]]:
    """Disable a channel and pause its sending broadcasts, in the caller's transaction.

    Returns whether this call disabled it (False: it was disabled already, and no
    second audit row is written — a revoked token fails every send of a chunk) and
    the broadcasts it paused.
    """
    changed = await conn.execute(
        update(channels)
        .where(channels.c.id == channel_id, channels.c.status == "active")
        .values(status="disabled", status_reason=reason, version=channels.c.version + 1)
    )
    paused = await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.channel_id == channel_id, broadcasts.c.status == "sending")
        .values(status="paused", status_reason=f"channel disabled: {reason}")
        .returning(broadcasts.c.id)
    )
    paused_ids = list(paused.scalars())
    for broadcast_id in paused_ids:  # every worker stops their claimed sends
        await broadcast_moved(conn, broadcast_id, "paused")
    disabled = changed.rowcount == 1
    if disabled:
        await changes.channel_changed(conn, channel_id)
        await audit.record(
            conn,
            actor,
            "channel.disable",
            target_type="channel",
            target_id=channel_id,
            details={"reason": reason},
        )
    return disabled, paused_ids
