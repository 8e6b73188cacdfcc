"""Live ``Channel`` objects by id, built from their rows on first use, with their rates.

Each object remembers the ``version`` of the row it was built from; a change anywhere
bumps it, and ``worker/channel_watch.py`` makes every process ``forget`` what moved.
A forgotten object is closed only after ``RETIRE_SECONDS`` (longer than a request
may take), so sends already on their way with it finish instead of being cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from rundfunk.channels.base import Channel
from rundfunk.channels.sandbox import SandboxBehaviour, SandboxChannel, SandboxPlatform
from rundfunk.channels.whatsapp.channel import WhatsAppChannel
from rundfunk.channels.whatsapp.client import DEFAULT_BASE_URL, WhatsAppConfig
from rundfunk.core.ratelimit import Rate
from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.services.channels import DEFAULT_THROUGHPUT
from rundfunk.services.errors import Conflict, NotFound
from rundfunk.services.secrets import SecretBox


class ChannelRegistry:
    """Live ``Channel`` objects by id, built from their rows on first use."""

    RETIRE_SECONDS = 40.0  # a Graph request takes at most 30 s (``GraphClient``)

    def __init__(
        self,
        db: Database,
        *,
        box: SecretBox,
        sandbox: SandboxPlatform,
        whatsapp_api_base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        self._db = db
        self._box = box
        self._sandbox = sandbox
        # The operator's setting (RUNDFUNK_WHATSAPP_API_BASE_URL), never a tenant's.
        self._whatsapp_base = whatsapp_api_base_url
        self._live: dict[int, Channel] = {}
        self._versions: dict[int, int] = {}  # the row version each live object was built from
        self._closing: set[asyncio.Future[None]] = set()
        self._rates: dict[int, Rate] = {}
        self._pair_rates: dict[int, Rate | None] = {}
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

    async def pair_rate(self, channel_id: int) -> Rate | None:
        """The per-recipient rate (None: no pair guard on this channel)."""
        if channel_id not in self._rates:
            await self._load(channel_id)
        return self._pair_rates.get(channel_id)

    async def settings(self, channel_id: int) -> dict[str, Any]:
        if channel_id not in self._settings:
            await self._load(channel_id)
        return self._settings[channel_id]

    async def whatsapp(self, channel_id: int) -> WhatsAppChannel:
        channel = await self.get(channel_id)
        if not isinstance(channel, WhatsAppChannel):
            raise Conflict(f"channel {channel_id} is not a WhatsApp channel")
        return channel

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

    def versions(self) -> dict[int, int]:
        """The row version of each channel built here (not those ``register``ed by hand)."""
        return dict(self._versions)

    def forget(self, channel_id: int) -> None:
        """Drop the live object: the next use builds it again from its (changed) row."""
        channel = self._live.pop(channel_id, None)
        if channel is not None:
            closing = asyncio.ensure_future(self._retire(channel))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._versions.pop(channel_id, None)
        self._rates.pop(channel_id, None)
        self._pair_rates.pop(channel_id, None)
        self._settings.pop(channel_id, None)

    async def _retire(self, channel: Channel) -> None:
        try:
            await asyncio.sleep(self.RETIRE_SECONDS)  # ``close`` cuts this short
        finally:
            await channel.close()

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
        elif row.kind == "whatsapp":
            secrets = self._box.open(row.credentials) if row.credentials else {}
            self._live[channel_id] = WhatsAppChannel(
                channel_id,
                WhatsAppConfig(
                    phone_number_id=str(settings["phone_number_id"]),
                    waba_id=str(settings["waba_id"]),
                    access_token=str(secrets.get("access_token", "")),
                    app_secret=str(secrets.get("app_secret", "")),
                    verify_token=str(secrets.get("verify_token", "")),
                    api_base_url=self._whatsapp_base,
                    api_version=str(settings["api_version"]),
                    display_phone_number=settings.get("display_phone_number"),
                ),
            )
        else:  # pragma: no cover - a row of a kind this version does not know
            raise NotFound(f"channel kind {row.kind!r} is not available in this version")
        burst = max(1, int(settings.get("burst", 20)))
        throughput = float(settings.get("throughput", DEFAULT_THROUGHPUT.get(row.kind, 80.0)))
        self._rates[channel_id] = Rate(throughput, burst)
        interval = float(settings.get("pair_interval_seconds") or 0)
        self._pair_rates[channel_id] = (
            Rate(1 / interval, max(1, int(settings.get("pair_burst", 1)))) if interval > 0 else None
        )
        self._settings[channel_id] = settings
        self._versions[channel_id] = int(row.version)

    async def close(self) -> None:
        for channel in self._live.values():
            await channel.close()
        self._live.clear()
        self._versions.clear()
        for closing in self._closing:
            closing.cancel()  # retired objects close now
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
