"""The console's channels: list, add and edit sandbox and WhatsApp channels, and a
channel's page (webhook URL, verify token, click-to-chat links with QR codes,
message templates). For admins and owners.

Forms are turned into a channel config by ``channel_forms``; the channels service
checks it. After a change the channel registry forgets its cached copy, as the API does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from rundfunk.services import channels as service
from rundfunk.services import dead_letters, whatsapp
from rundfunk.services import templates as template_service
from rundfunk.services.errors import Conflict, Invalid, ServiceError, Upstream
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.ui import channel_forms as forms
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import page, redirect
from rundfunk.web.ui.session import AdminDep
from rundfunk.worker.runtime import Runtime

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
KIND_NAMES = {"sandbox": N_("Sandbox"), "whatsapp": N_("WhatsApp")}
FAILED_SHOWN = 50  # failed webhook items listed on a channel's page (the API pages them all)


async def _typed(request: Request) -> dict[str, str]:
    """The channel form's fields as text (missing ones empty)."""
    sent = await request.form()
    return {key: str(sent.get(key) or "") for key in forms.FORM_FIELDS}


def _form_page(
    request: Request,
    member: Any,
    *,
    kind: str,
    values: dict[str, str],
    errors: dict[str, str],
    channel: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "channels/form.html",
        member=member,
        status=status,
        kind=kind,
        kind_name=KIND_NAMES[kind],
        values=values,
        errors=errors,
        channel=channel,
    )


def _webhook_url(runtime: Runtime, channel: dict[str, Any]) -> str | None:
    path = channel.get("webhook_path")
    return f"{runtime.settings.public_url}{path}" if path else None


@router.get("/channels")
async def channel_list(request: Request, member: AdminDep, runtime: RuntimeDep) -> Response:
    found = await service.list_channels(runtime.db, actor=member.actor)
    return page(request, "channels/list.html", member=member, channels=found, kinds=KIND_NAMES)


@router.get("/channels/new")
async def new_channel(request: Request, member: AdminDep, kind: str = "sandbox") -> Response:
    kind = kind if kind in KIND_NAMES else "sandbox"
    values = forms.form_values({}, "")
    return _form_page(request, member, kind=kind, values=values, errors={})


@router.post("/channels/new")
async def create_channel(
    request: Request, member: AdminDep, runtime: RuntimeDep, kind: Text = "sandbox"
) -> Response:
    kind = kind if kind in KIND_NAMES else "sandbox"
    values = await _typed(request)
    try:
        config = (
            forms.whatsapp_config(values, creating=True)
            if kind == "whatsapp"
            else forms.sandbox_config(values)
        )
        created = await service.create_channel(
            runtime.db,
            actor=member.actor,
            kind=kind,
            name=values["name"],
            config=config,
            box=runtime.box,
        )
    except ServiceError as exc:
        kept = {k: v for k, v in values.items() if k not in forms.WHATSAPP_SECRETS}
        return _form_page(
            request, member, kind=kind, values=kept, errors=forms.errors_for(exc), status=422
        )
    return redirect(request, f"/channels/{created['id']}", flash=N_("The channel is connected."))


@router.get("/channels/{channel_id}")
async def channel_page(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    return await _channel_page(request, member, runtime, channel_id)


async def _channel_page(
    request: Request,
    member: Any,
    runtime: Runtime,
    channel_id: int,
    *,
    sync_error: str = "",
    status: int = 200,
) -> Response:
    actor = member.actor
    channel = await service.get_channel(
        runtime.db, actor=actor, channel_id=channel_id, box=runtime.box
    )
    settings = await service.channel_settings(runtime.db, actor=actor, channel_id=channel_id)
    context: dict[str, Any] = {
        "channel": channel,
        "kind_name": KIND_NAMES.get(channel["kind"], channel["kind"]),
        "keywords": forms.keyword_lists(settings),
        "settings": settings,
        "webhook_url": _webhook_url(runtime, channel),
        "links": [],
        "links_error": "",
        "templates": [],
        "sync_error": sync_error,
        # Webhook items that could not be applied, with Retry / Discard (``dead_letters``).
        "failed_items": await dead_letters.list_dead_letters(
            runtime.db, actor=actor, channel_id=channel_id, limit=FAILED_SHOWN
        ),
        "failed_shown": FAILED_SHOWN,
    }
    if channel["kind"] == "whatsapp":
        try:
            context["links"] = await whatsapp.growth_links(
                runtime.db, actor=actor, channel_id=channel_id
            )
        except Conflict:
            context["links_error"] = "no_number"
        context["templates"] = await template_service.list_templates(
            runtime.db, actor=actor, channel_id=channel_id
        )
    return page(request, "channels/channel.html", member=member, status=status, **context)


@router.get("/channels/{channel_id}/edit")
async def edit_channel(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    channel = await service.get_channel(runtime.db, actor=member.actor, channel_id=channel_id)
    settings = await service.channel_settings(runtime.db, actor=member.actor, channel_id=channel_id)
    values = forms.form_values(settings, channel["name"])
    return _form_page(
        request, member, kind=channel["kind"], values=values, errors={}, channel=channel
    )


@router.post("/channels/{channel_id}/edit")
async def update_channel(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    channel = await service.get_channel(runtime.db, actor=member.actor, channel_id=channel_id)
    values = await _typed(request)
    try:
        config = (
            forms.whatsapp_config(values, creating=False)
            if channel["kind"] == "whatsapp"
            else forms.sandbox_config(values)
        )
        await service.update_channel(
            runtime.db,
            actor=member.actor,
            channel_id=channel_id,
            box=runtime.box,
            name=values["name"],
            config=config,
        )
    except ServiceError as exc:
        kept = {k: v for k, v in values.items() if k not in forms.WHATSAPP_SECRETS}
        return _form_page(
            request,
            member,
            kind=channel["kind"],
            values=kept,
            errors=forms.errors_for(exc),
            channel=channel,
            status=422,
        )
    runtime.registry.forget(channel_id)
    runtime.wake()
    return redirect(request, f"/channels/{channel_id}", flash=N_("The channel is saved."))


@router.post("/channels/{channel_id}/status")
async def change_status(
    request: Request,
    channel_id: int,
    member: AdminDep,
    runtime: RuntimeDep,
    status: Text = "",
) -> Response:
    """Disable a channel (nothing is sent on it) or activate it again."""
    await service.update_channel(
        runtime.db, actor=member.actor, channel_id=channel_id, box=runtime.box, status=status
    )
    runtime.registry.forget(channel_id)
    runtime.wake()
    flash = N_("The channel is active.") if status == "active" else N_("The channel is disabled.")
    return redirect(request, f"/channels/{channel_id}", flash=flash)


@router.get("/channels/{channel_id}/qr.svg")
async def qr_code(
    channel_id: int,
    member: AdminDep,
    runtime: RuntimeDep,
    topic: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The click-to-chat link (of one topic, or of all news) as an SVG QR code."""
    svg = await whatsapp.qr_code(
        runtime.db, actor=member.actor, channel_id=channel_id, topic=topic or None, kind="svg"
    )
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/channels/{channel_id}/templates/sync")
async def sync_templates(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    """Fetch the message templates from WhatsApp now; a refusal is shown on the page."""
    try:
        await whatsapp.sync_templates(
            runtime.db, runtime.registry, actor=member.actor, channel_id=channel_id
        )
    except (Upstream, Conflict) as exc:
        status = 502 if isinstance(exc, Upstream) else 409
        return await _channel_page(
            request, member, runtime, channel_id, sync_error=exc.message, status=status
        )
    return redirect(
        request, f"/channels/{channel_id}#templates", flash=N_("The templates are up to date.")
    )


PROFILE_FIELDS = ("about", "address", "description", "email", "vertical")


async def _profile_page(
    request: Request,
    member: Any,
    runtime: Runtime,
    channel_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    channel = await service.get_channel(runtime.db, actor=member.actor, channel_id=channel_id)
    found: dict[str, Any] = {"profile": {}, "imprint_url": None, "privacy_url": None}
    platform_error = ""
    try:
        found = await whatsapp.get_profile(
            runtime.db, runtime.registry, actor=member.actor, channel_id=channel_id
        )
    except Upstream as exc:
        platform_error = exc.message
    shown = {key: str(found["profile"].get(key) or "") for key in PROFILE_FIELDS}
    return page(
        request,
        "channels/profile.html",
        member=member,
        status=status,
        channel=channel,
        values=values or shown,
        errors=errors or {},
        platform_error=platform_error,
        websites=found["profile"].get("websites") or [],
        imprint_url=found.get("imprint_url"),
        privacy_url=found.get("privacy_url"),
        verticals=sorted(whatsapp.VERTICALS),
    )


@router.get("/channels/{channel_id}/profile")
async def profile_page(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    """The number's WhatsApp business profile (asked from WhatsApp each time)."""
    await service.require_kind(
        runtime.db, actor=member.actor, channel_id=channel_id, kind="whatsapp"
    )
    return await _profile_page(request, member, runtime, channel_id)


@router.post("/channels/{channel_id}/profile")
async def update_profile(
    request: Request, channel_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    sent = await request.form()
    values = {key: str(sent.get(key) or "").strip() for key in PROFILE_FIELDS}
    fields: dict[str, Any] = {k: v for k, v in values.items() if k != "vertical"}
    if values["vertical"]:
        fields["vertical"] = values["vertical"]
    try:
        await whatsapp.update_profile(
            runtime.db, runtime.registry, actor=member.actor, channel_id=channel_id, fields=fields
        )
    except (Upstream, Invalid) as exc:
        field = exc.message.split(":", 1)[0] if isinstance(exc, Invalid) else "_"
        errors = {field if field in PROFILE_FIELDS else "_": exc.message}
        return await _profile_page(
            request, member, runtime, channel_id, values=values, errors=errors, status=422
        )
    return redirect(
        request, f"/channels/{channel_id}/profile", flash=N_("The business profile is saved.")
    )
