"""The console's team inbox: the conversation list with its tabs, updated live.

The thread pages (``inbox_thread``) and the canned responses (``inbox_canned``) live
in their own modules; their routes are added to this module's ``router``, so the
console registers the whole inbox as one area. Every page is for agents and up, and
shows the member's own workspace only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from rundfunk.services import inbox_views
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.inbox_canned import router as canned_router
from rundfunk.web.ui.inbox_thread import STATUS_LABELS
from rundfunk.web.ui.inbox_thread import router as thread_router
from rundfunk.web.ui.live import stream
from rundfunk.web.ui.render import page
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)

TABS = (
    ("open", N_("Open")),
    ("pending", N_("Pending")),
    ("resolved", N_("Resolved")),
    ("mine", N_("Mine")),
    ("unassigned", N_("Unassigned")),
)
# What each tab says when it is empty, and what to do next.
EMPTY = {
    "open": (
        N_("No open conversations"),
        N_(
            "When someone writes to one of your channels, the conversation appears here "
            "at once. Try it: write from a phone in the simulator."
        ),
    ),
    "pending": (
        N_("Nothing is waiting for a contact"),
        N_(
            "Set a conversation to pending while you wait for the contact's answer; "
            "their next message opens it again."
        ),
    ),
    "resolved": (
        N_("No resolved conversations yet"),
        N_("Resolve a conversation when the question is answered; it is kept here."),
    ),
    "mine": (
        N_("Nothing is assigned to you"),
        N_("Open a conversation and assign it to yourself, or pick one from Unassigned."),
    ),
    "unassigned": (
        N_("Every conversation has someone looking after it"),
        N_("New conversations without an assignee show up here."),
    ),
}


def _view(value: str) -> str:
    if value not in inbox_views.VIEWS:
        raise HTTPException(404, f"no inbox view {value!r}")
    return value


async def _list_context(db: DatabaseDep, member: SessionMember, view: str) -> dict[str, Any]:
    return {
        "view": view,
        "tabs": TABS,
        "empty_state": EMPTY[view],
        "status_labels": STATUS_LABELS,
        "counts": await inbox_views.view_counts(db, actor=member.actor),
        "conversations": await inbox_views.list_view(db, actor=member.actor, view=view),
        "limit": inbox_views.LIST_LIMIT,
    }


@router.get("/inbox")
async def inbox_page(
    request: Request, member: AgentDep, db: DatabaseDep, view: str = "open"
) -> Response:
    context = await _list_context(db, member, _view(view))
    return page(request, "inbox/list.html", member=member, **context)


@router.get("/inbox/list")
async def inbox_fragment(
    request: Request, member: AgentDep, db: DatabaseDep, view: str = "open"
) -> Response:
    """The tabs and the list alone: what the live page reloads."""
    context = await _list_context(db, member, _view(view))
    return page(request, "inbox/_list.html", member=member, **context)


@router.get("/inbox/live")
async def inbox_live(request: Request, member: AgentDep, db: DatabaseDep) -> Response:
    """Says ``change`` when any conversation of the workspace moved."""

    async def fingerprint() -> list[str]:
        return await inbox_views.list_fingerprint(db, actor=member.actor)

    return stream(request, fingerprint, db=db, workspace_id=member.actor.workspace_id)


# The thread's and the canned responses' routes, as this router's own (plain routes,
# so the console's route guard sees every one of them).
router.routes.extend([*thread_router.routes, *canned_router.routes])
