"""The sandbox channel: behaves like a messenger platform, but its phones are simulated.

The phones' storage is injected (``SandboxPlatform``); Rundfunk's own database
implements it so that a phone's receipt and the delivery's outcome commit in one
transaction. ``SandboxBehaviour`` makes it fail a share of sends on purpose, so
retries and permanent failures can be tried without a real platform.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rundfunk.channels.base import InboundEvent, InboundMessage, OutboundMessage, SendResult
from rundfunk.core.errors import PermanentError, RetryableError


class SandboxPlatform(Protocol):
    async def deliver(self, channel_id: int, message: OutboundMessage) -> str:
        """Put the message on the simulated phone; return its provider message id."""
        ...


@dataclass(frozen=True)
class SandboxBehaviour:
    """How the simulated platform behaves; kept in the channel's settings."""

    fail_retryable_share: float = 0.0  # sends answered "temporarily unavailable"
    fail_permanent_share: float = 0.0  # sends answered "recipient undeliverable"
    delivered_after_s: float = 0.5  # phone reports "delivered" this long after receipt
    read_after_s: float = 2.0  # and "read" this long after receipt (0: never)

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> SandboxBehaviour:
        raw = settings.get("sandbox", {})
        if not isinstance(raw, Mapping):
            return cls()
        values = {k: float(v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**values)


class SandboxChannel:
    kind = "sandbox"

    def __init__(
        self,
        channel_id: int,
        platform: SandboxPlatform,
        behaviour: SandboxBehaviour | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.platform = platform
        self.behaviour = behaviour or SandboxBehaviour()
        self._rng = rng or random.Random()

    async def send(self, message: OutboundMessage) -> SendResult:
        roll = self._rng.random()
        if roll < self.behaviour.fail_permanent_share:
            raise PermanentError(
                "sandbox: recipient undeliverable (injected)", code="sandbox_permanent"
            )
        if roll < self.behaviour.fail_permanent_share + self.behaviour.fail_retryable_share:
            raise RetryableError(
                "sandbox: temporarily unavailable (injected)", code="sandbox_retry"
            )
        return SendResult(await self.platform.deliver(self.channel_id, message))

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """The sandbox's phones live inside Rundfunk; their requests need no signature."""

    def parse(self, body: bytes) -> list[InboundEvent]:
        """A phone's request: ``{"address": ..., "text": ..., "id"?: ..., "name"?: ...}``."""
        data = json.loads(body)
        return [
            InboundMessage(
                address=str(data["address"]),
                provider_message_id=str(data["id"]),
                timestamp=datetime.now(UTC),
                text=data.get("text"),
                media_url=data.get("media_url"),
                kind="media" if data.get("media_url") and not data.get("text") else "text",
                name=data.get("name"),
            )
        ]

    async def close(self) -> None:
        return None
