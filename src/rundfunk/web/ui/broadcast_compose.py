"""Composing a broadcast in the console: the form, its live preview and recipient count,
the confirmation step that names the count, and creating (and sending) it.

Nothing is written before the editor confirms: ``POST /broadcasts/review`` runs the
compose checks read-only (``broadcast_views.check_compose``) and answers with the
confirmation page, which carries the form's values as hidden fields; its button posts
them to ``POST /broadcasts``, which creates the broadcast and either starts it or
schedules it. A scheduled broadcast is never created unconfirmed, because the
scheduler would send it at its time whether or not anyone confirmed it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from rundfunk.core import personalize
from rundfunk.core import templates as template_text
from rundfunk.core.templates import TemplateShape
from rundfunk.db.session import Database
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views as views
from rundfunk.services import broadcasts as service
from rundfunk.services import channels, topics
from rundfunk.services import templates as template_service
from rundfunk.services.broadcast_review import RenderProblem, RenderRefused
from rundfunk.services.errors import Invalid, ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep, RuntimeDep
from rundfunk.web.ui.i18n import N_, translations
from rundfunk.web.ui.render import page, redirect, zone
from rundfunk.web.ui.session import EditorDep

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
Many = Annotated[list[str] | None, Form()]
SAMPLE = {"id": 0, "address": "+49 151 23456789", "name": "Alex", "attributes": {}}

# Where a service's message belongs in the form, by how it starts.
_FIELDS = (
    ("text", "text"),
    ("template", "template"),
    ("a template carries", "media_url"),
    ("media_url", "media_url"),
    ("send_at", "send_at"),
    ("unknown topic", "topics"),
    ("audience", "audience"),
    ("no channel", "channel_id"),
    ("channel", "channel_id"),
    ("with media", "text"),
    ("a whatsapp", "text"),
)


@dataclass
class Draft:
    """The compose form as typed, and what it means."""

    channel_id: str = ""
    audience: str = "all"
    topics: list[str] = field(default_factory=list)
    text: str = ""
    media_url: str = ""
    template: str = ""  # "name|language"
    parameters: str = ""  # one template body parameter per line
    when: str = "now"
    send_at: str = ""  # datetime-local, in the workspace's time zone

    @property
    def channel(self) -> int:
        try:
            return int(self.channel_id)
        except ValueError:
            raise Invalid(N_("Choose a channel."), field="channel_id") from None

    @property
    def topic_keys(self) -> list[str]:
        return self.topics if self.audience == "topics" else []

    @property
    def parameter_list(self) -> list[str]:
        return [line.strip() for line in self.parameters.splitlines() if line.strip()]

    def template_spec(self) -> dict[str, Any] | None:
        if not self.template:
            return None
        name, _, language = self.template.partition("|")
        spec: dict[str, Any] = {
            "name": name,
            "language": language,
            "body_parameters": self.parameter_list,
        }
        if self.media_url.strip():
            spec["header_media"] = self.media_url.strip()
        return spec

    def content(self) -> dict[str, Any]:
        """Keyword arguments for the compose checks and ``create_broadcast``."""
        spec = self.template_spec()
        return {
            "channel_id": self.channel,
            "text": None if spec is not None else (self.text.strip() and self.text) or None,
            "topic_keys": self.topic_keys,
            "media_url": None if spec is not None else self.media_url.strip() or None,
            "template": spec,
        }

    def check_audience(self) -> None:
        if self.audience == "topics" and not self.topics:
            raise Invalid(N_("Choose at least one topic, or send to the whole channel."),
                          field="audience")  # fmt: skip

    def moment(self, member: SessionMember) -> datetime | None:
        """The chosen send time in UTC (None: send now)."""
        if self.when != "later":
            return None
        try:
            local = datetime.fromisoformat(self.send_at)
        except ValueError:
            raise Invalid(N_("Enter the date and time to send at."), field="send_at") from None
        moment = local.replace(tzinfo=zone(member.timezone)).astimezone(UTC)
        if moment <= utcnow():
            raise Invalid(N_("Choose a time in the future."), field="send_at")
        if moment > utcnow() + service.MAX_AHEAD:
            raise Invalid(N_("Choose a time within a year from now."), field="send_at")
        return moment


def _draft(
    channel_id: str, audience: str, topics: list[str] | None, text: str = "", media_url: str = "",
    template: str = "", parameters: str = "", when: str = "", send_at: str = "",
) -> Draft:  # fmt: skip
    return Draft(
        channel_id=channel_id,
        audience="topics" if audience == "topics" else "all",
        topics=[t for t in topics or [] if t],
        # Browsers post a textarea's line breaks as CRLF although its maxlength counted
        # them as one character: 4,096 typed characters arrived as more than the limit.
        text=text.replace("\r\n", "\n"),
        media_url=media_url,
        template=template,
        parameters=parameters,
        when="later" if when == "later" else "now",
        send_at=send_at,
    )


async def _posted_draft(
    channel_id: Text = "", audience: Text = "", topics: Many = None, text: Text = "",
    media_url: Text = "", template: Text = "", parameters: Text = "", when: Text = "",
    send_at: Text = "",
) -> Draft:  # fmt: skip
    """The compose form as posted (by the form, the preview script or the confirmation)."""
    return _draft(channel_id, audience, topics, text, media_url, template, parameters, when,
                  send_at)  # fmt: skip


PostedDraft = Annotated[Draft, Depends(_posted_draft)]


_REFUSALS = {
    "render": N_("For %(who)s the text cannot be personalized: %(detail)s"),
    "empty": N_("For %(who)s the message comes out empty."),
    "long": N_("For %(who)s the message has %(length)s characters; the channel allows %(limit)s."),
}
_AFFECTED = N_("%(failing)s of %(checked)s recipients checked are affected; nothing was sent.")


def refusal(member: SessionMember, problem: RenderProblem) -> str:
    """Why the review refused the send, in the member's language."""
    gettext = translations(member.locale).gettext
    values = {
        "who": problem.who, "detail": problem.detail,
        "length": format_decimal(problem.length, locale=member.locale),
        "limit": format_decimal(problem.limit, locale=member.locale),
        "failing": problem.failing, "checked": problem.checked,
    }  # fmt: skip
    return f"{gettext(_REFUSALS[problem.kind]) % values} {gettext(_AFFECTED) % values}"


def form_errors(member: SessionMember, exc: ServiceError) -> dict[str, str]:
    """A refusal next to the field it is about, in the member's language when it is ours."""
    if isinstance(exc, RenderRefused):
        return {exc.field or "text": refusal(member, exc.problem)}
    message = translations(member.locale).gettext(exc.message)
    name = exc.field
    if name is None:
        lowered = exc.message.lower()
        name = next((f for prefix, f in _FIELDS if lowered.startswith(prefix)), "_")
    return {name: message}


async def template_choices(db: Database, member: SessionMember) -> list[dict[str, Any]]:
    """The approved templates of every WhatsApp channel, with what their preview needs."""
    found: list[dict[str, Any]] = []
    for channel in await channels.list_channels(db, actor=member.actor):
        if channel["kind"] != "whatsapp":
            continue
        listed = await template_service.list_templates(
            db, actor=member.actor, channel_id=channel["id"]
        )
        for item in listed:
            if item["status"] != "APPROVED":
                continue
            shape = TemplateShape.of(item["components"])
            found.append({
                "value": f"{item['name']}|{item['language']}",
                "label": f"{item['name']} ({item['language']})",
                "channel_id": channel["id"],
                "body": shape.body,
                "parameters": shape.body_params,
                "header": shape.header_format if shape.media_header else "",
            })  # fmt: skip
    return found


async def preview_of(
    db: Database, member: SessionMember, draft: Draft, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    """The message as the newest subscriber (or a sample contact) would read it."""
    sample: dict[str, Any] | None = None
    with contextlib.suppress(Invalid):  # no channel chosen yet: the sample contact
        sample = await views.sample_contact(db, actor=member.actor, channel_id=draft.channel)
    contact = sample or {**SAMPLE, "language": member.locale}
    shown: dict[str, Any] = {
        "who": contact.get("name") or contact.get("address"),
        "sample": sample is None,
        "text": "",
        "media_url": draft.media_url.strip(),
        "error": "",
    }

    def render(source: str) -> str:
        return personalize.render(
            source, contact=contact, workspace={"name": member.workspace_name}
        )

    try:
        if draft.template:
            chosen = next(
                (c for c in choices if c["value"] == draft.template
                 and str(c["channel_id"]) == draft.channel_id), None,
            )  # fmt: skip
            if chosen is not None:
                values = [render(p) for p in draft.parameter_list]
                shown["text"] = template_text.preview(chosen["body"], values)
        elif draft.text.strip():
            personalize.validate(draft.text)
            shown["text"] = render(draft.text)
    except personalize.PersonalizationError as exc:
        shown["error"] = str(exc)
    return shown


async def count_of(db: Database, member: SessionMember, draft: Draft) -> int | None:
    """The live recipient count, or None while the choice cannot be counted."""
    if draft.audience == "topics" and not draft.topics:
        return 0
    try:
        return await views.recipient_count(
            db, actor=member.actor, channel_id=draft.channel, topic_keys=draft.topic_keys
        )
    except ServiceError:
        return None


async def compose_page(
    request: Request,
    db: Database,
    member: SessionMember,
    draft: Draft,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    listed = [c for c in await channels.list_channels(db, actor=member.actor)
              if c["status"] == "active"]  # fmt: skip
    if not draft.channel_id and listed:
        draft.channel_id = str(listed[0]["id"])
    choices = await template_choices(db, member)
    kind = next((c["kind"] for c in listed if str(c["id"]) == draft.channel_id), "")
    return page(
        request,
        "broadcasts/compose.html",
        member=member,
        status=status,
        draft=draft,
        errors=errors or {},
        channels=listed,
        kind=kind,
        topics=await topics.list_topics(db, actor=member.actor),
        templates=choices,
        preview=await preview_of(db, member, draft, choices) if draft.channel_id else None,
        count=await count_of(db, member, draft) if draft.channel_id else None,
    )


@router.get("/broadcasts/new", response_class=HTMLResponse)
async def new(request: Request, member: EditorDep, db: DatabaseDep) -> Response:
    return await compose_page(request, db, member, Draft())


@router.post("/broadcasts/preview", response_class=HTMLResponse)
async def preview(
    request: Request, member: EditorDep, db: DatabaseDep, draft: PostedDraft,
) -> Response:  # fmt: skip
    try:
        shown = await preview_of(db, member, draft, await template_choices(db, member))
    except Invalid as exc:
        shown = {"who": "", "sample": True, "text": "", "media_url": "", "error": exc.message}
    return page(request, "broadcasts/_preview.html", member=member, preview=shown)


@router.get("/broadcasts/audience", response_class=HTMLResponse)
async def audience(
    request: Request, member: EditorDep, db: DatabaseDep,
    channel_id: str = "", audience: str = "",
) -> Response:  # fmt: skip
    """The live recipient count next to the audience picker (``topics`` may repeat)."""
    topic_list = request.query_params.getlist("topics")
    draft = _draft(channel_id, audience, topic_list)
    count = await count_of(db, member, draft)
    return page(request, "broadcasts/_count.html", member=member, count=count)


@router.post("/broadcasts/review", response_class=HTMLResponse)
async def review(
    request: Request, member: EditorDep, db: DatabaseDep, draft: PostedDraft,
) -> Response:  # fmt: skip
    """The confirmation step: the checks of composing, the count, nothing written yet."""
    try:
        draft.check_audience()
        moment = draft.moment(member)
        count = await views.check_compose(db, actor=member.actor, **draft.content())
    except ServiceError as exc:
        return await compose_page(
            request, db, member, draft, errors=form_errors(member, exc), status=422
        )
    channel = await channels.get_channel(db, actor=member.actor, channel_id=draft.channel)
    choices = await template_choices(db, member)
    return page(
        request,
        "broadcasts/review.html",
        member=member,
        draft=draft,
        count=count,
        moment=moment,
        channel=channel,
        preview=await preview_of(db, member, draft, choices),
    )


@router.post("/broadcasts/edit", response_class=HTMLResponse)
async def edit(
    request: Request, member: EditorDep, db: DatabaseDep, draft: PostedDraft,
) -> Response:  # fmt: skip
    """Back from the confirmation step to the form, with everything as it was typed."""
    return await compose_page(request, db, member, draft)


@router.post("/broadcasts")
async def create(
    request: Request, member: EditorDep, runtime: RuntimeDep, draft: PostedDraft,
) -> Response:  # fmt: skip
    """Confirmed: create the broadcast, then start it now or leave it scheduled."""
    db = runtime.db
    try:
        draft.check_audience()
        moment = draft.moment(member)
        created = await service.create_broadcast(
            db, actor=member.actor, send_at=moment, **draft.content()
        )
    except ServiceError as exc:
        return await compose_page(
            request, db, member, draft, errors=form_errors(member, exc), status=422
        )
    url = f"/broadcasts/{created['id']}"
    if moment is not None:
        return redirect(request, url, flash=N_("Broadcast scheduled."))
    try:
        await service.send_broadcast(db, actor=member.actor, broadcast_id=created["id"])
    except ServiceError:
        return redirect(
            request, url, flash=N_("The broadcast was saved as a draft but could not start.")
        )
    runtime.wake()
    return redirect(request, url, flash=N_("Sending started."))
