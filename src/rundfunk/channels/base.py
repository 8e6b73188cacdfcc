"""The one protocol every messenger channel implements, and the events it speaks.

A channel does two things: send one outbound message (returning the provider's
message id or raising an error from ``core.errors``) and turn the provider's
webhook payloads into channel-neutral events. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from rundfunk.core.deliveries import DeliveryStatus


@dataclass(frozen=True)
class OutboundMessage:
    address: str
    text: str | None
    media_url: str | None = None
    # Ours, echoed back by the platform in status callbacks: "d:<delivery id>" for a
    # broadcast delivery, "m:<message id>" for a conversation message.
    callback_data: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


@dataclass(frozen=True)
class InboundMessage:
    """Something a person wrote to the business."""

    address: str
    provider_message_id: str
    timestamp: datetime
    kind: str = "text"  # text | image | video | audio | document | location | ...
    text: str | None = None
    media_url: str | None = None
    name: str | None = None  # the person's profile name, if the platform tells
    payload: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    """The platform's word on one message we sent."""

    provider_message_id: str
    status: DeliveryStatus  # sent | delivered | read | failed
    timestamp: datetime
    callback_data: str | None = None
    error_code: str | None = None
    error_reason: str | None = None


InboundEvent = InboundMessage | StatusUpdate


class SignatureError(Exception):
    """A webhook request whose signature or secret does not check out."""


class Channel(Protocol):
    """What the dispatcher and the webhook routes need from a messenger."""

    kind: str
    channel_id: int

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raise a ``core.errors.ChannelError`` subclass on failure."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless the webhook request is authentic."""
        ...

    def parse(self, body: bytes) -> list[InboundEvent]:
        """Turn a verified webhook body into channel-neutral events."""
        ...

    async def close(self) -> None: ...
