"""Outbound messages as Cloud API request bodies, and the size limits checked before.

``limits_problem`` is what the compose step calls (a clear 4xx for the editor);
``build`` turns a channel-neutral ``OutboundMessage`` into the JSON the
``/{phone_number_id}/messages`` endpoint takes.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from rundfunk.channels.base import Menu, OutboundMessage, TemplateSend

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_INTERACTIVE_BODY = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_LIST_BUTTON = 20
MAX_CALLBACK = 512
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# Documented upload limits by kind, in bytes, and the types accepted.
MEDIA_LIMITS: dict[str, int] = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
    "sticker": 500 * 1024,
}
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "audio": frozenset(
        {"audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus"}
    ),
    "sticker": frozenset({"image/webp"}),
}
_EXTENSIONS = {
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
    ".mp4": "video",
    ".3gp": "video",
    ".aac": "audio",
    ".mp3": "audio",
    ".m4a": "audio",
    ".amr": "audio",
    ".ogg": "audio",
    ".opus": "audio",
    ".webp": "sticker",
}
_NO_CAPTION = frozenset({"audio", "sticker"})


def media_kind_for(mime_type: str) -> str:
    """The message kind a file of this type is sent as (anything else: a document)."""
    for kind, types in MEDIA_TYPES.items():
        if mime_type in types:
            return kind
    return "document"


def guess_media_kind(url: str) -> str:
    """The kind of a linked file, from its name (anything unknown goes as a document)."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return _EXTENSIONS.get(suffix, "document")


def limits_problem(
    *, text: str | None, media_url: str | None, media_id: str | None, media_kind: str | None
) -> str | None:
    """Why this message cannot go out on WhatsApp as composed, or None when it can."""
    has_media = bool(media_url or media_id)
    if media_kind is not None and media_kind not in MEDIA_KINDS:
        return f"media_kind must be one of {', '.join(MEDIA_KINDS)}"
    if not has_media:
        if text is not None and len(text) > MAX_TEXT:
            return f"text is longer than WhatsApp's {MAX_TEXT} characters"
        return None
    kind = media_kind or (guess_media_kind(media_url) if media_url else "document")
    if text and kind in _NO_CAPTION:
        return f"a WhatsApp {kind} carries no caption: send the text as its own message"
    if text is not None and len(text) > MAX_CAPTION:
        return (
            f"with media the text is a caption, and WhatsApp allows {MAX_CAPTION} characters "
            f"(this one has {len(text)})"
        )
    return None


def _template(template: TemplateSend) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if template.header_media and template.header_format:
        kind = template.header_format.lower()
        media = template.header_media
        ref = {"link": media} if media.startswith(("https://", "http://")) else {"id": media}
        components.append({"type": "header", "parameters": [{"type": kind, kind: ref}]})
    elif template.header:
        components.append(
            {"type": "header", "parameters": [{"type": "text", "text": v} for v in template.header]}
        )
    if template.body:
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": v} for v in template.body]}
        )
    for index, suffix in template.url_buttons:
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": str(index),
                "parameters": [{"type": "text", "text": suffix}],
            }
        )
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        body["components"] = components
    return body


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _interactive(text: str | None, menu: Menu) -> dict[str, Any]:
    body = {"text": _cut(text or menu.button, MAX_INTERACTIVE_BODY)}
    choices = menu.choices
    if len(choices) <= MAX_BUTTONS and all(len(c.title) <= MAX_BUTTON_TITLE for c in choices):
        return {
            "type": "button",
            "body": body,
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": c.id, "title": c.title}} for c in choices
                ]
            },
        }
    rows: list[dict[str, Any]] = []
    for choice in choices[:MAX_LIST_ROWS]:
        row = {"id": choice.id, "title": _cut(choice.title, MAX_ROW_TITLE)}
        if choice.description:
            row["description"] = _cut(choice.description, MAX_ROW_DESCRIPTION)
        rows.append(row)
    section: dict[str, Any] = {"rows": rows}
    if menu.section:
        section["title"] = _cut(menu.section, MAX_ROW_TITLE)
    return {
        "type": "list",
        "body": body,
        "action": {"button": _cut(menu.button, MAX_LIST_BUTTON), "sections": [section]},
    }


def build(message: OutboundMessage) -> dict[str, Any]:
    """The request body for one message (see CHANNELS.md for every shape)."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.address,
    }
    if message.callback_data:
        payload["biz_opaque_callback_data"] = message.callback_data[:MAX_CALLBACK]
    if message.template is not None:
        payload.update(type="template", template=_template(message.template))
    elif message.menu is not None and message.menu.choices:
        payload.update(type="interactive", interactive=_interactive(message.text, message.menu))
    elif message.media_url or message.media_id:
        kind = message.media_kind or (
            guess_media_kind(message.media_url) if message.media_url else "document"
        )
        media: dict[str, Any] = (
            {"id": message.media_id} if message.media_id else {"link": message.media_url}
        )
        if message.text and kind not in _NO_CAPTION:
            media["caption"] = message.text
        if kind == "document" and message.filename:
            media["filename"] = message.filename
        payload.update(type=kind, **{kind: media})
    else:
        payload.update(
            type="text", text={"body": message.text or "", "preview_url": message.preview_url}
        )
    return payload
