"""The phone simulator: several simulated phones on a sandbox channel, side by side.

Each phone is a person on a messenger: what it types goes through the same inbound
rules as a real message (START, STOP, HELP, a question for the inbox), and what the
business sends it (confirmations, broadcasts, agent replies) arrives live. The page
asks one Server-Sent Events stream for a fingerprint per phone and reloads only the
threads that changed (``static/simulator.js``).

A phone writes through this console route rather than the public ``/sandbox`` JSON
endpoint: the route checks that the channel belongs to the member's workspace, is
CSRF-protected like every console write, answers errors in the page's language, and
works without script as a plain form. Both call ``services.sandbox.phone_writes``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from babel.dates import format_datetime, format_time
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from rundfunk.db.types import utcnow
from rundfunk.services import sandbox as service
from rundfunk.services import topics
from rundfunk.services.errors import ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep, RuntimeDep
from rundfunk.web.ui import live
from rundfunk.web.ui.i18n import N_, translations
from rundfunk.web.ui.render import page, redirect, zone
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)

DEFAULT_PHONES = 3
MAX_PHONES = 8
ADDRESS = re.compile(r"^[A-Za-z0-9+_-]{1,64}$")  # as the sandbox endpoint accepts
Text = Annotated[str, Form()]


def address_of(number: int) -> str:
    """Phone ``number`` (1, 2, …) of the simulator: 4915100000001, 4915100000002, …"""
    return f"49151{number:08d}"


def shown_number(address: str) -> str:
    """``+49 151 00000001`` for a simulator address; other addresses as they are."""
    if re.fullmatch(r"49151\d{8}", address):
        return f"+49 151 {address[5:]}"
    return address


def _count(value: str) -> int:
    try:
        return min(max(int(value), 1), MAX_PHONES)
    except ValueError:
        return DEFAULT_PHONES


def _address(value: str) -> str:
    if not ADDRESS.fullmatch(value):
        raise HTTPException(404, "no such phone")
    return value


async def _channel(db: DatabaseDep, member: SessionMember, value: str) -> tuple[int, list[Any]]:
    """The chosen sandbox channel (default: the oldest) and all of the workspace's."""
    channels = await service.sandbox_channels(db, actor=member.actor)
    if not channels:
        return 0, []
    if not value:
        return int(channels[0]["id"]), channels
    chosen = next((c for c in channels if str(c["id"]) == value.strip()), None)
    if chosen is None:
        raise HTTPException(404, "no such sandbox channel in this workspace")
    return int(chosen["id"]), channels


def _when(member: SessionMember, at: datetime) -> str:
    now = utcnow().astimezone(zone(member.timezone))
    local = at.astimezone(zone(member.timezone))
    if local.date() == now.date():
        return format_time(local, "short", locale=member.locale)
    return format_datetime(local, "short", locale=member.locale)


async def _thread(
    db: DatabaseDep, member: SessionMember, channel_id: int, address: str
) -> list[dict[str, Any]]:
    items = await service.phone_thread(
        db, actor=member.actor, channel_id=channel_id, address=address
    )
    for item in items:
        item["time"] = _when(member, item["at"])
        media = item.get("media_url") or ""
        item["media_url"] = media if media.startswith(("https://", "http://")) else ""
    return items


def _phone(number: int) -> dict[str, Any]:
    address = address_of(number)
    return {"n": number, "address": address, "number": shown_number(address)}


async def _page(
    request: Request,
    member: SessionMember,
    db: DatabaseDep,
    channel: str,
    phones: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    channel_id, channels = await _channel(db, member, channel)
    count = _count(phones)
    shown = [_phone(n) for n in range(1, count + 1)]
    prints: dict[str, Any] = {}
    if channel_id:
        for phone in shown:
            phone["thread"] = await _thread(db, member, channel_id, phone["address"])
        prints = await service.phones_fingerprint(
            db, actor=member.actor, channel_id=channel_id, addresses=[p["address"] for p in shown]
        )
    keys = [t["key"] for t in await topics.list_topics(db, actor=member.actor)]
    return page(
        request,
        "simulator/index.html",
        member=member,
        status=status,
        channels=channels,
        channel_id=channel_id,
        phones=shown,
        count=count,
        max_phones=MAX_PHONES,
        prints=prints,
        topic_keys=keys[:8],
        stream="/simulator/stream?" + _query(channel_id, [p["address"] for p in shown]),
        errors=errors or {},
        typed=typed or {},
    )


@router.get("/simulator", response_class=HTMLResponse)
async def simulator(
    request: Request,
    member: AgentDep,
    db: DatabaseDep,
    channel: str = "",
    phones: str = str(DEFAULT_PHONES),
) -> Response:
    return await _page(request, member, db, channel, phones)


def _query(channel_id: int, addresses: list[str]) -> str:
    return "&".join([f"channel={channel_id}", *(f"phone={a}" for a in addresses)])


@router.get("/simulator/thread", response_class=HTMLResponse)
async def thread(
    request: Request, member: AgentDep, db: DatabaseDep, channel: str = "", phone: str = ""
) -> Response:
    """One phone's messages, as the list items the page shows (reloaded on change)."""
    channel_id, _channels = await _channel(db, member, channel)
    address = _address(phone)
    items = await _thread(db, member, channel_id, address)
    return page(request, "simulator/_thread.html", member=member, items=items)


@router.get("/simulator/stream")
async def stream(
    request: Request,
    member: AgentDep,
    db: DatabaseDep,
    channel: str = "",
    phone: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """``change`` with ``{address: fingerprint}`` whenever any shown phone's thread moves."""
    channel_id, _channels = await _channel(db, member, channel)
    addresses = [_address(a) for a in (phone or [])[:MAX_PHONES]]

    async def fingerprint() -> Any:
        return await service.phones_fingerprint(
            db, actor=member.actor, channel_id=channel_id, addresses=addresses
        )

    return live.stream(request, fingerprint, db=db, workspace_id=member.actor.workspace_id)


@router.post("/simulator/phones/{address}/messages")
async def write(
    request: Request,
    address: str,
    member: AgentDep,
    runtime: RuntimeDep,
    channel: Text = "",
    text: Text = "",
    phones: Text = str(DEFAULT_PHONES),
) -> Response:
    """The phone writes. A script gets the phone's new thread; a plain form the page."""
    db = runtime.db
    address = _address(address)
    channel_id, _channels = await _channel(db, member, channel)
    scripted = "text/html" not in request.headers.get("accept", "")
    try:
        if not channel_id:
            raise HTTPException(404, "this workspace has no sandbox channel")
        await service.phone_writes(db, channel_id=channel_id, address=address, text=text)
    except ServiceError as exc:
        message = N_("Type a message first.") if not text.strip() else exc.message
        if scripted:
            return HTMLResponse(translations(member.locale).gettext(message), status_code=422)
        return await _page(
            request,
            member,
            db,
            str(channel_id),
            phones,
            status=422,
            errors={address: message},
            typed={address: text},
        )
    runtime.wake()
    if scripted:
        items = await _thread(db, member, channel_id, address)
        return page(request, "simulator/_thread.html", member=member, items=items)
    back = f"/simulator?channel={channel_id}&phones={_count(phones)}"
    return redirect(request, back)
