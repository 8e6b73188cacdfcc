"""Connected messenger accounts: create, list, and build live ``Channel`` objects."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import Channel
from rundfunk.channels.sandbox import SandboxBehaviour, SandboxChannel, SandboxPlatform
from rundfunk.core.keywords import KeywordConfig
from rundfunk.core.ratelimit import Rate
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, channels
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Invalid, NotFound
from rundfunk.services.secrets import SecretBox

KINDS = ("sandbox",)  # whatsapp and telegram register here when they land
DEFAULT_THROUGHPUT = {"sandbox": 1000.0}
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
)


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
    box: SecretBox | None = None,
) -> dict[str, Any]:
    actor.require(Role.ADMIN)
    if kind not in KINDS:
        raise Invalid(f"unknown channel kind {kind!r}; available: {', '.join(KINDS)}")
    if not name.strip():
        raise Invalid("name must not be empty")
    checked = _check_settings(kind, settings or {})
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
    return await get_channel(db, actor=actor, channel_id=channel_id)


async def list_channels(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_PUBLIC)
            .where(channels.c.workspace_id == actor.workspace_id)
            .order_by(channels.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def get_channel(db: Database, *, actor: Actor, channel_id: int) -> dict[str, Any]:
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
    return dict(row._mapping)


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
        .values(status="disabled", status_reason=reason)
    )
    paused = await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.channel_id == channel_id, broadcasts.c.status == "sending")
        .values(status="paused", status_reason=f"channel disabled: {reason}")
        .returning(broadcasts.c.id)
    )
    paused_ids = list(paused.scalars())
    disabled = changed.rowcount == 1
    if disabled:
        await audit.record(
            conn,
            actor,
            "channel.disable",
            target_type="channel",
            target_id=channel_id,
            details={"reason": reason},
        )
    return disabled, paused_ids


class ChannelRegistry:
    """Live ``Channel`` objects by id, built from their rows on first use."""

    def __init__(self, db: Database, *, box: SecretBox, sandbox: SandboxPlatform) -> None:
        self._db = db
        self._box = box
        self._sandbox = sandbox
        self._live: dict[int, Channel] = {}
        self._rates: dict[int, Rate] = {}
        self._settings: dict[int, dict[str, Any]] = {}
        # Many first sends arrive at once; one of them loads, the others wait for it.
        self._loading = asyncio.Lock()

    async def get(self, channel_id: int) -> Channel:
        if channel_id not in self._live:
            await self._load(channel_id)
        return self._live[channel_id]

    async def rate(self, channel_id: int) -> Rate:
        if channel_id not in self._rates:
            await self._load(channel_id)
        return self._rates[channel_id]

    async def settings(self, channel_id: int) -> dict[str, Any]:
        if channel_id not in self._settings:
            await self._load(channel_id)
        return self._settings[channel_id]

    def register(
        self, channel: Channel, rate: Rate, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Use this live channel for its id instead of building one from its row.

        The seam for a channel whose platform is not reachable from a row (a fake
        platform in tests, a channel object wired up by hand).
        """
        self._live[channel.channel_id] = channel
        self._rates[channel.channel_id] = rate
        self._settings[channel.channel_id] = dict(settings or {})

    def forget(self, channel_id: int) -> None:
        self._live.pop(channel_id, None)
        self._rates.pop(channel_id, None)
        self._settings.pop(channel_id, None)

    async def _load(self, channel_id: int) -> None:
        async with self._loading:
            if channel_id not in self._live:
                await self._build(channel_id)

    async def _build(self, channel_id: int) -> None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(channels).where(channels.c.id == channel_id))).first()
        if row is None:
            raise NotFound(f"no channel {channel_id}")
        settings = dict(row.settings)
        if row.kind == "sandbox":
            self._live[channel_id] = SandboxChannel(
                channel_id, self._sandbox, SandboxBehaviour.from_settings(settings)
            )
        else:  # pragma: no cover - only reachable once another kind is registered
            raise NotFound(f"channel kind {row.kind!r} is not available in this version")
        burst = max(1, int(settings.get("burst", 20)))
        throughput = float(settings.get("throughput", DEFAULT_THROUGHPUT.get(row.kind, 80.0)))
        self._rates[channel_id] = Rate(throughput, burst)
        self._settings[channel_id] = settings

    async def close(self) -> None:
        for channel in self._live.values():
            await channel.close()
        self._live.clear()
