"""The console's failed webhook items, on a channel's page: retry or discard one.

The list itself is a section of the channel page (``channels._channel_page`` reads
``services.dead_letters``); these are its two buttons, for admins, CSRF-checked like
every console form.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rundfunk.services import dead_letters as service
from rundfunk.services.errors import Conflict
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import redirect
from rundfunk.web.ui.session import AdminDep

router = APIRouter(include_in_schema=False)


@router.post("/channels/{channel_id}/failed/{dead_letter_id}/retry")
async def retry_item(
    request: Request, channel_id: int, dead_letter_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    back = f"/channels/{channel_id}#failed"
    try:
        result = await service.retry(
            runtime.db,
            actor=member.actor,
            dead_letter_id=dead_letter_id,
            policy=runtime.dispatcher.policy,
        )
    except Conflict:
        return redirect(
            request, back, flash=N_("The item still cannot be applied; its error is shown below.")
        )
    for disabled in result.effects.disabled_channels:
        runtime.registry.forget(disabled)
    runtime.wake()
    return redirect(request, back, flash=N_("The item is applied."))


@router.post("/channels/{channel_id}/failed/{dead_letter_id}/discard")
async def discard_item(
    request: Request, channel_id: int, dead_letter_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    await service.discard(runtime.db, actor=member.actor, dead_letter_id=dead_letter_id)
    return redirect(request, f"/channels/{channel_id}#failed", flash=N_("The item is discarded."))
