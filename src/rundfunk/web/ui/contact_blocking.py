"""The contact page's Block / Unblock button (agents and up, like the page itself).

A blocked person gets no broadcasts and no replies; what they write is kept on their
page ("Messages while blocked") and never reaches the inbox (``services.blocking``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rundfunk.services import blocking
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import redirect
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)


@router.post("/contacts/{contact_id}/block")
async def block(request: Request, contact_id: int, member: AgentDep, db: DatabaseDep) -> Response:
    await blocking.block_contact(db, actor=member.actor, contact_id=contact_id)
    return redirect(
        request,
        f"/contacts/{contact_id}",
        flash=N_("The contact is blocked: no broadcasts, no replies, nothing in the inbox."),
    )


@router.post("/contacts/{contact_id}/unblock")
async def unblock(
    request: Request, contact_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    await blocking.unblock_contact(db, actor=member.actor, contact_id=contact_id)
    return redirect(request, f"/contacts/{contact_id}", flash=N_("The contact is unblocked."))
