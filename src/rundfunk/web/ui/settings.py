"""The console's workspace settings: business name, time zone, imprint and privacy
URLs, and the texts sent on opt-in, opt-out and HELP. Keywords are per channel: the
page links to each channel's form. For admins and owners."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rundfunk.services import channels
from rundfunk.services import workspaces as service
from rundfunk.services.errors import ServiceError
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import AdminDep

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
FIELDS = ("name", "timezone", "imprint_url", "privacy_url", *service.TEXTS)


async def _settings_page(
    request: Request,
    member: Any,
    runtime: Any,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    found = await channels.list_channels(runtime.db, actor=member.actor)
    return page(
        request,
        "settings/settings.html",
        member=member,
        status=status,
        values=values,
        errors=errors,
        timezones=sorted(service.timezones()),
        channels=found,
        max_text=service.MAX_TEXT,
    )


@router.get("/settings")
async def settings_page(request: Request, member: AdminDep, runtime: RuntimeDep) -> Response:
    current = await service.get_settings(runtime.db, member.workspace_id)
    values = {key: str(current.get(key) or "") for key in FIELDS}
    return await _settings_page(request, member, runtime, values, {})


@router.post("/settings")
async def save_settings(
    request: Request,
    member: AdminDep,
    runtime: RuntimeDep,
    name: Text = "",
    timezone: Text = "",
    imprint_url: Text = "",
    privacy_url: Text = "",
    welcome_text: Text = "",
    goodbye_text: Text = "",
    help_text: Text = "",
) -> Response:
    values = {
        "name": name,
        "timezone": timezone,
        "imprint_url": imprint_url,
        "privacy_url": privacy_url,
        "welcome_text": welcome_text,
        "goodbye_text": goodbye_text,
        "help_text": help_text,
    }
    try:
        await service.update_settings(runtime.db, actor=member.actor, changes=values)
    except ServiceError as exc:
        return await _settings_page(request, member, runtime, values, errors_of(exc), 422)
    return redirect(request, "/settings", flash=N_("The settings are saved."))
