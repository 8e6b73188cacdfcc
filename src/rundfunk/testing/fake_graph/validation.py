"""Checks of a send request like the Cloud API's: pure functions raising ``GraphError``.

Templates are checked against the stored template in ``templates``; the rest is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container
from typing import Any

from aiohttp import web

from .errors import JSON, GraphError, bad

MESSAGE_TYPES = frozenset(
    {"text", "image", "video", "audio", "document", "sticker"}
    | {"interactive", "template", "location", "contacts", "reaction"}
)
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


async def read_json(request: web.Request) -> JSON:
    """The request body as a JSON object."""
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise bad(f"Request body is not valid JSON: {exc}") from exc
    return obj_param(body, "body")


def obj_param(value: object, where: str) -> JSON:
    if not isinstance(value, dict):
        raise bad(f"Param {where} must be a JSON object")
    return value


def str_param(value: object, where: str, *, max_len: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"Param {where} is required and must be a non-empty string")
    if len(value) > max_len:
        raise bad(f"Param {where} must be at most {max_len} characters long")
    return value


def list_param(value: object, where: str, *, low: int, high: int) -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise bad(f"Param {where} must be a list of {low} to {high} items")
    return value


def wa_id_param(to: object) -> str:
    digits = to[1:] if isinstance(to, str) and to.startswith("+") else to
    if not isinstance(digits, str) or not digits.isdigit() or not 5 <= len(digits) <= 20:
        raise bad("Param to must be a phone number: digits with an optional leading '+'")
    return digits


def check_send(
    payload: JSON, media_ids: Container[str], check_template: Callable[[JSON], str]
) -> tuple[str, str, str | None]:
    """Validate one send; returns the wa_id, the pricing category and the callback data.

    ``check_template`` checks a template object and returns its category.
    """
    if payload.get("messaging_product") != "whatsapp":
        raise bad("Param messaging_product must be 'whatsapp'")
    if payload.get("recipient_type", "individual") != "individual":
        raise bad("Param recipient_type must be 'individual'")
    wa_id = wa_id_param(payload.get("to"))
    kind = payload.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise GraphError(131051, f"Message type {kind!r} is not supported")
    obj = obj_param(payload.get(kind) if kind != "contacts" else {}, kind)
    callback = str_param(
        payload.get("biz_opaque_callback_data"),
        "biz_opaque_callback_data",
        max_len=512,
        required=False,
    )
    if "context" in payload:
        str_param(
            obj_param(payload["context"], "context").get("message_id"), "context", max_len=512
        )
    category = "service"
    if kind == "text":
        _check_text(obj)
    elif kind in MEDIA_TYPES:
        _check_media(kind, obj, media_ids)
    elif kind == "interactive":
        _check_interactive(obj)
    elif kind == "location":
        _check_location(obj)
    elif kind == "contacts":
        _check_contacts(payload.get("contacts"))
    elif kind == "reaction":
        _check_reaction(obj)
    else:
        category = check_template(obj)
    return wa_id, category, callback


def check_media_ref(obj: JSON, where: str, media_ids: Container[str]) -> None:
    has_link, has_id = "link" in obj, "id" in obj
    if has_link == has_id:
        raise bad(f"Param {where} needs exactly one of 'link' or 'id'")
    if has_link:
        link = obj["link"]
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise bad(f"Param {where}['link'] must be an http(s) URL")
    elif obj["id"] not in media_ids:
        raise bad(f"Param {where}['id'] is not a valid media id")


def _check_media(kind: str, obj: JSON, media_ids: Container[str]) -> None:
    check_media_ref(obj, kind, media_ids)
    if "caption" in obj:
        if kind in ("audio", "sticker"):
            raise bad(f"Param {kind}['caption'] is not allowed for {kind} messages")
        str_param(obj["caption"], f"{kind}['caption']", max_len=1024)
    if "filename" in obj:
        if kind != "document":
            raise bad(f"Param {kind}['filename'] is only allowed for documents")
        str_param(obj["filename"], "document['filename']", max_len=240)


def _check_text(obj: JSON) -> None:
    str_param(obj.get("body"), "text['body']", max_len=4096)
    if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
        raise bad("Param text['preview_url'] must be a boolean")


def _check_interactive(obj: JSON) -> None:
    kind = obj.get("type")
    action = obj_param(obj.get("action"), "interactive['action']")
    body = obj_param(obj.get("body"), "interactive['body']")
    str_param(
        body.get("text"), "interactive['body']['text']", max_len=1024 if kind == "button" else 4096
    )
    if "footer" in obj:
        footer = obj_param(obj["footer"], "interactive['footer']")
        str_param(footer.get("text"), "interactive['footer']['text']", max_len=60)
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)
    elif kind == "cta_url":
        params = obj_param(action.get("parameters"), "interactive['action']['parameters']")
        str_param(params.get("display_text"), "display_text", max_len=20)
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad("Param interactive['action']['parameters']['url'] must be an http(s) URL")
    else:
        raise bad("Param interactive['type'] must be one of button, list, cta_url (fake)")


def _check_buttons(action: JSON) -> None:
    buttons = list_param(action.get("buttons"), "interactive['action']['buttons']", low=1, high=3)
    ids, titles = set(), set()
    for i, raw in enumerate(buttons):
        where = f"interactive['action']['buttons'][{i}]"
        button = obj_param(raw, where)
        if button.get("type") != "reply":
            raise bad(f"Param {where}['type'] must be 'reply'")
        reply = obj_param(button.get("reply"), f"{where}['reply']")
        ids.add(str_param(reply.get("id"), f"{where}['reply']['id']", max_len=256))
        titles.add(str_param(reply.get("title"), f"{where}['reply']['title']", max_len=20))
    if len(ids) != len(buttons) or len(titles) != len(buttons):
        raise bad("Buttons must have unique ids and unique titles")


def _check_list(action: JSON) -> None:
    str_param(action.get("button"), "interactive['action']['button']", max_len=20)
    sections = list_param(
        action.get("sections"), "interactive['action']['sections']", low=1, high=10
    )
    row_ids: list[str | None] = []
    for i, raw in enumerate(sections):
        where = f"interactive['action']['sections'][{i}]"
        section = obj_param(raw, where)
        str_param(section.get("title"), f"{where}['title']", max_len=24, required=len(sections) > 1)
        for j, raw_row in enumerate(
            list_param(section.get("rows"), f"{where}['rows']", low=1, high=10)
        ):
            row = obj_param(raw_row, f"{where}['rows'][{j}]")
            row_ids.append(str_param(row.get("id"), f"{where}['rows'][{j}]['id']", max_len=200))
            str_param(row.get("title"), f"{where}['rows'][{j}]['title']", max_len=24)
            desc = row.get("description")
            str_param(desc, f"{where}['rows'][{j}]['description']", max_len=72, required=False)
    if len(row_ids) > 10:
        raise bad("A list message may hold at most 10 rows in total")
    if len(set(row_ids)) != len(row_ids):
        raise bad("Row ids must be unique")


def _check_location(obj: JSON) -> None:
    for key in ("latitude", "longitude"):
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad(f"Param location['{key}'] is required and must be a number")


def _check_contacts(value: object) -> None:
    for i, raw in enumerate(list_param(value, "contacts", low=1, high=257)):
        name = obj_param(obj_param(raw, f"contacts[{i}]").get("name"), f"contacts[{i}]['name']")
        str_param(
            name.get("formatted_name"), f"contacts[{i}]['name']['formatted_name']", max_len=512
        )


def _check_reaction(obj: JSON) -> None:
    str_param(obj.get("message_id"), "reaction['message_id']", max_len=512)
    if not isinstance(obj.get("emoji"), str):
        raise bad("Param reaction['emoji'] must be a string (empty removes the reaction)")
