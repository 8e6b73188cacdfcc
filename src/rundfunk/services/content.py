"""What an outbound message carries beyond text and a media link, checked per channel.

Broadcasts keep it in ``broadcasts.content``, conversation messages in
``messages.payload``, in one shape: ``{"template": {...}, "media_id", "media_kind",
"filename", "preview_url", "menu": {...}}``. ``compose`` checks it at compose time
(a clear 4xx for the editor, not a failed send later); ``outbound`` turns it into
the channel-neutral ``OutboundMessage`` when the worker sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import Choice, Menu, OutboundMessage, TemplateSend
from rundfunk.channels.whatsapp.payload import MAX_CAPTION, MAX_TEXT, limits_problem
from rundfunk.core import personalize
from rundfunk.core.templates import clean_parameter
from rundfunk.db.tables import channels
from rundfunk.services import templates
from rundfunk.services.errors import Invalid, NotFound


async def channel_kind(conn: AsyncConnection, channel_id: int, workspace_id: int) -> str:
    kind = await conn.scalar(
        select(channels.c.kind).where(
            channels.c.id == channel_id, channels.c.workspace_id == workspace_id
        )
    )
    if kind is None:
        raise NotFound(f"no channel {channel_id}")
    return str(kind)


def text_limit(kind: str, *, media: bool) -> int:
    """How many characters one message's text may have on this kind of channel.

    WhatsApp documents 4,096 for a text and 1,024 for a caption; the sandbox (and
    Telegram, 1-4,096) take the text limit, so what passes a test there also fits.
    """
    if kind == "whatsapp" and media:
        return MAX_CAPTION
    return MAX_TEXT


async def compose(
    conn: AsyncConnection,
    *,
    kind: str,
    channel_id: int,
    text: str | None,
    media_url: str | None = None,
    template: Mapping[str, Any] | None = None,
    media_id: str | None = None,
    media_kind: str | None = None,
    filename: str | None = None,
    preview_url: bool = False,
    broadcast: bool = False,
) -> tuple[str | None, dict[str, Any] | None]:
    """Check a message for this channel; returns (text to store, content or None)."""
    if kind != "whatsapp" and (template or media_id or media_kind or filename):
        raise Invalid("templates and uploaded media ids are WhatsApp features")
    if kind == "whatsapp" and broadcast and template is None:
        known = await templates.sendable_names(conn, channel_id)
        raise Invalid(
            "template: WhatsApp broadcasts must use an approved template "
            "({name, language, body_parameters}); approved on this channel: "
            + (", ".join(known) or "none yet - sync templates first")
        )
    content: dict[str, Any] = {}
    if template is not None:
        if media_url or media_id:
            raise Invalid("a template carries its media as header_media, not media_url")
        for key in ("body_parameters", "header_parameters", "button_parameters"):
            for number, value in enumerate(template.get(key) or [], start=1):
                try:
                    personalize.validate(value)
                except personalize.PersonalizationError as exc:
                    raise Invalid(f"template.{key}[{number}]: {exc}") from exc
        resolved = await templates.resolve(conn, channel_id=channel_id, spec=template)
        content["template"] = resolved
        return text or resolved["body"], content
    if not text and not media_url and not media_id:
        raise Invalid("text: a message needs text or media")
    if kind == "whatsapp":
        problem = limits_problem(
            text=text, media_url=media_url, media_id=media_id, media_kind=media_kind
        )
        if problem is not None:
            raise Invalid(problem)
    for key, value in (("media_id", media_id), ("media_kind", media_kind), ("filename", filename)):
        if value:
            content[key] = value
    if preview_url:
        content["preview_url"] = True
    return text, content or None


def menu_content(choices: list[tuple[str, str]], *, button: str, section: str) -> dict[str, Any]:
    """A menu (WhatsApp list or buttons) of (id, title) pairs for ``messages.payload``."""
    return {
        "menu": {
            "button": button,
            "section": section,
            "choices": [{"id": i, "title": t} for i, t in choices],
        }
    }


def outbound(
    *,
    address: str,
    callback_data: str,
    text: str | None,
    media_url: str | None,
    content: Mapping[str, Any] | None,
    render: Callable[[str], str],
) -> OutboundMessage:
    """The message to send; ``render`` personalizes template parameters for one person.

    Raises ``personalize.PersonalizationError`` or ``ValueError`` when a parameter
    cannot be rendered or renders empty (the platform refuses empty parameters), and
    when the whole message is empty (a text that personalized to blanks, no media).
    """
    content = content or {}
    if (
        not (text and text.strip())
        and not media_url
        and not content.get("media_id")
        and not content.get("template")
    ):
        raise ValueError("the message is empty for this contact")
    template: TemplateSend | None = None
    spec = content.get("template")
    if isinstance(spec, Mapping):

        def params(key: str) -> tuple[str, ...]:
            values = tuple(clean_parameter(render(v)) for v in spec.get(key) or [])
            for number, value in enumerate(values, start=1):
                if not value:
                    raise ValueError(f"{key}[{number}] is empty for this contact")
            return values

        buttons = params("button_parameters")
        header_media = spec.get("header_media")
        template = TemplateSend(
            name=str(spec["name"]),
            language=str(spec["language"]),
            body=params("body_parameters"),
            header=params("header_parameters"),
            header_media=render(header_media) if header_media else None,
            header_format=spec.get("header_format"),
            url_buttons=tuple(
                zip((int(i) for i in spec.get("url_buttons") or []), buttons, strict=False)
            ),
        )
    menu: Menu | None = None
    raw_menu = content.get("menu")
    if isinstance(raw_menu, Mapping):
        menu = Menu(
            choices=tuple(
                Choice(str(c["id"]), str(c["title"]), c.get("description"))
                for c in raw_menu.get("choices") or []
            ),
            button=str(raw_menu.get("button") or "Choose"),
            section=str(raw_menu.get("section") or ""),
        )
    return OutboundMessage(
        address=address,
        text=text,
        media_url=media_url,
        callback_data=callback_data,
        media_id=content.get("media_id"),
        media_kind=content.get("media_kind"),
        filename=content.get("filename"),
        preview_url=bool(content.get("preview_url")),
        menu=menu,
        template=template,
    )
