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
from rundfunk.core.errors import ChannelError

# What the events' fields may hold: the columns they end up in are this wide. A
# channel's parse cuts longer values (``core.text.clean_text``), so that one odd item
# of a webhook is stored rather than failing at the database.
MAX_ADDRESS = 128  # contacts.address
MAX_NAME = 200  # contacts.name
MAX_PROVIDER_ID = 128  # messages / deliveries .provider_message_id
MAX_ERROR_CODE = 32  # deliveries.error_code
MAX_TEMPLATE_NAME = 512  # templates.name
MAX_LANGUAGE = 16  # templates.language
MAX_TEMPLATE_STATUS = 32  # templates.status


@dataclass(frozen=True)
class Choice:
    """One option of an interactive menu: a reply button or a list row.

    ``id`` comes back in the person's reply (``InboundMessage.payload["reply_id"]``);
    Rundfunk uses the command itself as the id (``"START news"``), so a tap is
    handled exactly like the typed keyword.
    """

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class Menu:
    """Interactive choices sent with the message's text (WhatsApp buttons or list)."""

    choices: tuple[Choice, ...]
    button: str = "Choose"  # the list's opening button; unused for reply buttons
    section: str = ""  # the list section's title


@dataclass(frozen=True)
class TemplateSend:
    """An approved template with its parameters already rendered for one person."""

    name: str
    language: str
    body: tuple[str, ...] = ()
    header: tuple[str, ...] = ()  # text parameters of a TEXT header
    header_media: str | None = None  # link or uploaded media id of an IMAGE/VIDEO/... header
    header_format: str | None = None  # TEXT | IMAGE | VIDEO | DOCUMENT | LOCATION
    # Dynamic URL button suffixes, by the button's index in the template.
    url_buttons: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    address: str
    text: str | None
    media_url: str | None = None
    # Ours, echoed back by the platform in status callbacks: "d:<delivery id>" for a
    # broadcast delivery, "m:<message id>" for a conversation message.
    callback_data: str = ""
    media_id: str | None = None  # a file uploaded to the platform before (WhatsApp media id)
    media_kind: str | None = None  # image | video | audio | document | sticker
    filename: str | None = None  # shown for documents
    preview_url: bool = False  # let the messenger render a preview of the first link
    menu: Menu | None = None
    template: TemplateSend | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


@dataclass(frozen=True)
class InboundMessage:
    """Something a person wrote to the business."""

    address: str
    provider_message_id: str
    timestamp: datetime
    # text | image | video | audio | document | sticker | location | contacts | reaction |
    # interactive | button | unsupported (whatever the platform sent, never dropped)
    kind: str = "text"
    text: str | None = None  # the text, a caption, or a tapped choice's title
    media_url: str | None = None
    name: str | None = None  # the person's profile name, if the platform tells
    # Channel-neutral details of non-text messages: media_id / mime_type / sha256,
    # latitude / longitude / name / address, contacts, emoji / message_id (reaction),
    # reply_id (a tapped button or list row), context {from, id} (a reply), errors.
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
    recipient: str | None = None
    # For a failed status: the provider's error mapped into the one error tree, so a
    # failure reported later by webhook is handled like the same error at send time.
    error: ChannelError | None = None


@dataclass(frozen=True)
class ConsentUpdate:
    """The person changed a preference in the messenger app itself (WhatsApp's
    "stop / resume marketing messages"), not by writing to us."""

    address: str
    opted_in: bool
    timestamp: datetime
    category: str = "marketing"
    detail: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class TemplateStatusUpdate:
    """The platform approved, paused, disabled or rejected one of our templates."""

    name: str
    language: str
    status: str  # APPROVED | PAUSED | DISABLED | REJECTED | ... as the platform says
    timestamp: datetime
    reason: str | None = None


InboundEvent = InboundMessage | StatusUpdate | ConsentUpdate | TemplateStatusUpdate


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
