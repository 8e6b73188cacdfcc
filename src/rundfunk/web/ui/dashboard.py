"""The dashboard: the workspace at a glance, and the first steps of a new one.

Agents see the inbox's open work; editors and up also the subscribers over the last
30 days, opt-ins and opt-outs per day and the last broadcasts' delivery funnels. Until
a workspace has done its first five minutes (a channel, a subscribed phone, a
broadcast, a question answered) a checklist says what to do next.
"""

from __future__ import annotations

from typing import Any

from babel.dates import format_skeleton
from fastapi import APIRouter, Request
from fastapi.responses import Response

from rundfunk.services import dashboard as service
from rundfunk.services.actors import Role
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import page
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)

# The inbox's views that list what a dashboard number counts.
INBOX_OPEN = "/inbox?view=open"
INBOX_UNASSIGNED = "/inbox?view=unassigned"
INBOX_MINE = "/inbox?view=mine"
# A broadcast's status as the badge shows it (translated in the template).
STATUS_NAMES = (
    N_("draft"),
    N_("scheduled"),
    N_("sending"),
    N_("paused"),
    N_("done"),
    N_("cancelled"),
)


def _steps(steps: service.FirstSteps, *, role: Role, sandbox: bool) -> list[dict[str, Any]]:
    """The getting-started checklist for this member: done or not, and where to go."""
    admin = role.rank >= Role.ADMIN.rank
    items: list[dict[str, Any]] = [
        {
            "done": steps.channel,
            "title": N_("Connect a channel"),
            "text": N_(
                "The sandbox channel lets you try everything without a messenger account; "
                "connect WhatsApp when you are ready."
            )
            if admin
            else N_("Ask an admin of your workspace to connect a channel."),
            "href": "/channels" if admin else "",
            "action": N_("Open channels"),
        },
        {
            "done": steps.subscriber,
            "title": N_("Subscribe a phone"),
            "text": N_("Send START from a simulated phone: it becomes your first subscriber.")
            if sandbox
            else N_("Send START to your channel's number from your own phone."),
            "href": "/simulator" if sandbox else "",
            "action": N_("Open the phone simulator"),
        },
    ]
    if role.rank >= Role.EDITOR.rank:
        items.append(
            {
                "done": steps.broadcast,
                "title": N_("Send your first broadcast"),
                "text": N_("Write a message to every subscriber and watch it arrive."),
                "href": "/broadcasts/new",
                "action": N_("Write a broadcast"),
            }
        )
    items += [
        {
            "done": steps.conversation,
            "title": N_("Ask a question from a phone"),
            "text": N_("Anything that is not a keyword opens a private conversation."),
            "href": "/simulator" if sandbox else "",
            "action": N_("Open the phone simulator"),
        },
        {
            "done": steps.reply,
            "title": N_("Answer it in the inbox"),
            "text": N_("Your reply arrives on the phone; the conversation stays with the team."),
            "href": "/inbox",
            "action": N_("Open the inbox"),
        },
    ]
    return items


def _columns(days: list[service.Day], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "label": format_skeleton("MMMd", day.day, locale=lang),
            "subscribers": day.subscribers,
            "opt_ins": day.opt_ins,
            "opt_outs": day.opt_outs,
        }
        for day in days
    ]


@router.get("/dashboard")
async def dashboard(request: Request, member: AgentDep, db: DatabaseDep) -> Response:
    data = await service.overview(db, actor=member.actor, timezone=member.timezone)
    sandbox = bool(request.app.state.settings.sandbox_enabled)
    steps = _steps(data.first_steps, role=member.role, sandbox=sandbox)
    days = _columns(data.days, member.locale)
    return page(
        request,
        "dashboard/index.html",
        member=member,
        data=data,
        editor=member.role.rank >= Role.EDITOR.rank,
        steps=steps,
        steps_done=sum(1 for step in steps if step["done"]),
        days=days,
        points=[(day["label"], day["subscribers"]) for day in days],
        peak=max([max(d["opt_ins"], d["opt_outs"]) for d in days] or [0]) or 1,
        links={"open": INBOX_OPEN, "unassigned": INBOX_UNASSIGNED, "mine": INBOX_MINE},
    )
