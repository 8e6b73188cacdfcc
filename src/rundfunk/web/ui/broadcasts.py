"""The console's broadcasts: the list, one broadcast's live progress and statistics
(funnel, failures by reason, deliveries), and pause / resume / cancel / send.

Composing is ``broadcast_compose``; its routes are included first so that
``/broadcasts/new`` is never read as a broadcast id. Editors and up only: an agent
gets 403 on every URL here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from rundfunk.services import broadcast_views as views
from rundfunk.services import broadcasts as service
from rundfunk.services import channels, topics
from rundfunk.services.broadcast_review import RenderRefused
from rundfunk.services.errors import Conflict, ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep, RuntimeDep
from rundfunk.web.ui import broadcast_compose
from rundfunk.web.ui.broadcast_compose import refusal
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.live import stream
from rundfunk.web.ui.render import page, redirect
from rundfunk.web.ui.session import EditorDep

router = APIRouter(include_in_schema=False)
router.include_router(broadcast_compose.router)

PAGE = 50
STATUS_LABELS = {
    "draft": N_("Draft"),
    "scheduled": N_("Scheduled"),
    "sending": N_("Sending"),
    "paused": N_("Paused"),
    "done": N_("Done"),
    "failed": N_("Failed"),  # every copy tried failed: red, with the reason
    "cancelled": N_("Cancelled"),
}
DELIVERY_LABELS = {
    "queued": N_("Queued"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "failed": N_("Failed"),
    "skipped": N_("Skipped"),
}
MOVED_ON = N_("Not possible any more: the broadcast's state has changed.")


def progress(stats: dict[str, int]) -> int:
    """Percent of the audience that has been handled (sent, failed or skipped)."""
    total = stats["total"]
    if not total:
        return 0
    waiting = stats["queued"] + stats["deferred"]
    return int(100 * (total - waiting) / total)


def funnel(stats: dict[str, int]) -> dict[str, int]:
    """How many reached each step: a read message was also sent and delivered."""
    read = stats["read"]
    delivered = stats["delivered"] + read
    return {"sent": stats["sent"] + delivered, "delivered": delivered, "read": read}


async def _names(db: DatabaseDep, member: SessionMember) -> tuple[dict[int, str], dict[str, str]]:
    listed = await channels.list_channels(db, actor=member.actor)
    known = await topics.list_topics(db, actor=member.actor)
    return {c["id"]: c["name"] for c in listed}, {t["key"]: t["name"] for t in known}


@router.get("/broadcasts", response_class=HTMLResponse)
async def index(request: Request, member: EditorDep, db: DatabaseDep) -> Response:
    items = await views.list_broadcasts(db, actor=member.actor, limit=100)
    channel_names, topic_names = await _names(db, member)
    return page(
        request,
        "broadcasts/list.html",
        member=member,
        items=items,
        channel_names=channel_names,
        topic_names=topic_names,
        labels=STATUS_LABELS,
        funnel=funnel,
        has_channels=bool(channel_names),
    )


async def _live(db: DatabaseDep, member: SessionMember, broadcast_id: int) -> dict[str, Any]:
    """What the live part of a broadcast's page shows."""
    broadcast = await views.get_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)
    stats = broadcast["stats"]
    return {
        "broadcast": broadcast,
        "stats": stats,
        "percent": progress(stats),
        "steps": funnel(stats),
        "failures": await views.failure_reasons(db, actor=member.actor, broadcast_id=broadcast_id),
        "labels": STATUS_LABELS,
        "delivery_labels": DELIVERY_LABELS,
    }


async def _deliveries(
    db: DatabaseDep, member: SessionMember, broadcast_id: int, status: str, after: int
) -> dict[str, Any]:
    """One page of a broadcast's deliveries (optionally of one status), by id."""
    wanted = status if status in DELIVERY_LABELS else None
    rows = await views.list_deliveries(
        db, actor=member.actor, broadcast_id=broadcast_id, status=wanted,
        after_id=max(after, 0), limit=PAGE,
    )  # fmt: skip
    query = urlencode({k: v for k, v in (("status", wanted), ("after", after)) if v})
    return {
        "deliveries": rows,
        "status_filter": wanted or "",
        "after": after,
        "next_after": rows[-1]["id"] if len(rows) == PAGE else None,
        "deliveries_url": f"/broadcasts/{broadcast_id}/deliveries" + (f"?{query}" if query else ""),
    }


@router.get("/broadcasts/{broadcast_id:int}", response_class=HTMLResponse)
async def detail(
    request: Request,
    broadcast_id: int,
    member: EditorDep,
    db: DatabaseDep,
    status: str = "",
    after: int = 0,
) -> Response:
    live = await _live(db, member, broadcast_id)
    channel_names, topic_names = await _names(db, member)
    created_by = live["broadcast"]["created_by"]
    creators = await views.creator_names(db, actor=member.actor, labels=[created_by])
    return page(
        request,
        "broadcasts/detail.html",
        member=member,
        **live,
        **await _deliveries(db, member, broadcast_id, status, after),
        channel_name=channel_names.get(live["broadcast"]["channel_id"], ""),
        topic_names=topic_names,
        creator=creators.get(created_by, created_by),
    )


@router.get("/broadcasts/{broadcast_id:int}/deliveries", response_class=HTMLResponse)
async def deliveries_fragment(
    request: Request,
    broadcast_id: int,
    member: EditorDep,
    db: DatabaseDep,
    status: str = "",
    after: int = 0,
) -> Response:
    """The deliveries table alone: the page reloads it when the live part changes."""
    listed = await _deliveries(db, member, broadcast_id, status, after)
    broadcast = await views.get_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)
    return page(
        request,
        "broadcasts/_deliveries.html",
        member=member,
        broadcast=broadcast,
        delivery_labels=DELIVERY_LABELS,
        **listed,
    )


@router.get("/broadcasts/{broadcast_id:int}/live", response_class=HTMLResponse)
async def live_fragment(
    request: Request, broadcast_id: int, member: EditorDep, db: DatabaseDep
) -> Response:
    """The progress bar, counts, funnel, failures and buttons (reloaded on each change)."""
    live = await _live(db, member, broadcast_id)
    return page(request, "broadcasts/_live.html", member=member, **live)


@router.get("/broadcasts/{broadcast_id:int}/events")
async def events(
    request: Request, broadcast_id: int, member: EditorDep, db: DatabaseDep
) -> Response:
    await views.get_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)  # 404 first

    async def fingerprint() -> Any:
        current = await views.get_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)
        return [current["status"], current["stats"]]

    return stream(request, fingerprint, db=db, workspace_id=member.actor.workspace_id)


@router.get("/broadcasts/{broadcast_id:int}/confirm", response_class=HTMLResponse)
async def confirm(
    request: Request, broadcast_id: int, member: EditorDep, db: DatabaseDep
) -> Response:
    """The confirmation step for a saved draft or scheduled broadcast: send it now."""
    broadcast = await views.get_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)
    if broadcast["status"] not in {"draft", "scheduled"}:
        return redirect(request, f"/broadcasts/{broadcast_id}")
    count = await views.recipient_count(
        db, actor=member.actor, channel_id=broadcast["channel_id"],
        topic_keys=broadcast["topic_keys"],
    )  # fmt: skip
    refused = ""
    try:  # the review its send will run: no "Send now" for a message that would fail
        if count:
            await views.review_broadcast(db, actor=member.actor, broadcast_id=broadcast_id)
    except RenderRefused as exc:
        refused = refusal(member, exc.problem)
    channel_names, topic_names = await _names(db, member)
    return page(
        request,
        "broadcasts/confirm.html",
        member=member,
        broadcast=broadcast,
        count=count,
        refused=refused,
        channel_name=channel_names.get(broadcast["channel_id"], ""),
        topic_names=topic_names,
    )


async def _act(
    request: Request, broadcast_id: int, action: Any, flash: str, *, runtime: RuntimeDep,
    member: SessionMember, allowed: set[str] | None = None,
) -> Response:  # fmt: skip
    url = f"/broadcasts/{broadcast_id}"
    try:
        if allowed is not None:
            current = await views.get_broadcast(
                runtime.db, actor=member.actor, broadcast_id=broadcast_id
            )
            if current["status"] not in allowed:
                raise Conflict(MOVED_ON)
        await action(runtime.db, actor=member.actor, broadcast_id=broadcast_id)
    except Conflict:
        return redirect(request, url, flash=MOVED_ON)
    except RenderRefused as exc:  # the review refused it: say why, in the member's language
        return redirect(request, url, flash=refusal(member, exc.problem))
    except ServiceError as exc:
        if exc.code == "not_found":
            raise
        return redirect(request, url, flash=N_("The broadcast could not start."))
    runtime.wake()
    return redirect(request, url, flash=flash)


@router.post("/broadcasts/{broadcast_id:int}/send")
async def send(
    request: Request, broadcast_id: int, member: EditorDep, runtime: RuntimeDep
) -> Response:
    return await _act(
        request, broadcast_id, service.send_broadcast, N_("Sending started."),
        runtime=runtime, member=member, allowed={"draft", "scheduled"},
    )  # fmt: skip


@router.post("/broadcasts/{broadcast_id:int}/pause")
async def pause(
    request: Request, broadcast_id: int, member: EditorDep, runtime: RuntimeDep
) -> Response:
    return await _act(
        request, broadcast_id, service.pause_broadcast, N_("Broadcast paused."),
        runtime=runtime, member=member,
    )  # fmt: skip


@router.post("/broadcasts/{broadcast_id:int}/resume")
async def resume(
    request: Request, broadcast_id: int, member: EditorDep, runtime: RuntimeDep
) -> Response:
    return await _act(
        request, broadcast_id, service.send_broadcast, N_("Broadcast resumed."),
        runtime=runtime, member=member, allowed={"paused"},
    )  # fmt: skip


@router.post("/broadcasts/{broadcast_id:int}/cancel")
async def cancel(
    request: Request, broadcast_id: int, member: EditorDep, runtime: RuntimeDep
) -> Response:
    return await _act(
        request, broadcast_id, service.cancel_broadcast, N_("Broadcast cancelled."),
        runtime=runtime, member=member,
    )  # fmt: skip
