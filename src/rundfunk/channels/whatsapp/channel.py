"""The WhatsApp channel: Cloud API sends, signed webhooks, templates, profile, media."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.channels.whatsapp import payload
from rundfunk.channels.whatsapp import webhook as wire
from rundfunk.channels.whatsapp.client import GraphClient, WhatsAppConfig


class WhatsAppChannel:
    kind = "whatsapp"

    def __init__(self, channel_id: int, config: WhatsAppConfig, *, connections: int = 128) -> None:
        self.channel_id = channel_id
        self.config = config
        self.client = GraphClient(config, connections=connections)

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(await self.client.send(payload.build(message)))

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        wire.verify_signature(self.config.app_secret, headers, body)

    def parse(self, body: bytes) -> list[InboundEvent]:
        return wire.parse(body, phone_number_id=self.config.phone_number_id)

    async def templates(self) -> list[dict[str, Any]]:
        return await self.client.templates()

    async def close(self) -> None:
        await self.client.close()
