"""The console's team page (invite members, change roles, remove) and the public page
that accepts an invitation: the invited person sets a password and is signed in.

An invitation link is shown once, to the admin who created it (there is no mail
server); the page accepting it is shown before sign-in, so it uses the form cookie
for CSRF like the setup page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from rundfunk.services import api_tokens, team
from rundfunk.services.actors import Role
from rundfunk.services.errors import NotFound, ServiceError
from rundfunk.services.sessions import SESSION_DAYS
from rundfunk.web.deps import DatabaseDep, RuntimeDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import (
    FORM_COOKIE,
    SESSION_COOKIE,
    AdminDep,
    check_form_cookie,
    form_token,
    set_cookie,
)

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
ROLE_NAMES = {
    "owner": N_("Owner"),
    "admin": N_("Admin"),
    "editor": N_("Editor"),
    "agent": N_("Agent"),
}
ROLE_HELP = {
    "owner": N_("everything, including other owners"),
    "admin": N_("channels, team and settings, and all an editor does"),
    "editor": N_("broadcasts and topics, and all an agent does"),
    "agent": N_("the inbox and contacts"),
}


def _roles_for(member: Any) -> list[str]:
    """The roles this member may hand out: owners only by owners."""
    return [r.value for r in Role if r is not Role.OWNER or member.role is Role.OWNER]


async def _team_page(
    request: Request,
    member: Any,
    runtime: Any,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    invitation: team.Invitation | None = None,
    invited_name: str = "",
    status: int = 200,
    new_token: api_tokens.NewToken | None = None,
    token_errors: dict[str, str] | None = None,
    token_values: dict[str, str] | None = None,
) -> Response:
    found = await team.list_team(runtime.db, actor=member.actor)
    tokens = await api_tokens.list_tokens(runtime.db, actor=member.actor)
    return page(
        request,
        "team/team.html",
        member=member,
        status=status,
        members=found,
        roles=_roles_for(member),
        role_names=ROLE_NAMES,
        role_help=ROLE_HELP,
        errors=errors or {},
        values=values or {"email": "", "name": "", "role": "agent"},
        invitation=invitation,
        invited_name=invited_name,
        # The API tokens section (``team/_tokens.html``, routes in ``team_tokens``).
        tokens=tokens,
        token_roles=[r.value for r in Role if r.rank <= member.role.rank],
        new_token=new_token,
        token_errors=token_errors or {},
        token_values=token_values or {"name": "", "role": "editor"},
    )


@router.get("/team")
async def team_page(request: Request, member: AdminDep, runtime: RuntimeDep) -> Response:
    return await _team_page(request, member, runtime)


@router.post("/team/invite")
async def invite(
    request: Request,
    member: AdminDep,
    runtime: RuntimeDep,
    email: Text = "",
    name: Text = "",
    role: Text = "agent",
) -> Response:
    values = {"email": email, "name": name, "role": role}
    try:
        invitation = await team.invite_member(
            runtime.db,
            actor=member.actor,
            email=email,
            name=name,
            role=role,
            public_url=runtime.settings.public_url,
        )
    except ServiceError as exc:
        return await _team_page(
            request, member, runtime, errors=errors_of(exc), values=values, status=422
        )
    # Shown now and never again: only the link's hash is stored.
    return await _team_page(
        request, member, runtime, invitation=invitation, invited_name=name.strip() or email
    )


@router.post("/team/{member_id}/invite")
async def renew_invite(
    request: Request, member_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    invitation = await team.renew_invite(
        runtime.db, actor=member.actor, member_id=member_id, public_url=runtime.settings.public_url
    )
    listed = await team.list_team(runtime.db, actor=member.actor)
    name = next((m["name"] for m in listed if m["id"] == member_id), "")
    return await _team_page(request, member, runtime, invitation=invitation, invited_name=name)


@router.post("/team/{member_id}/role")
async def change_role(
    request: Request, member_id: int, member: AdminDep, runtime: RuntimeDep, role: Text = ""
) -> Response:
    try:
        await team.change_role(runtime.db, actor=member.actor, member_id=member_id, role=role)
    except NotFound:
        raise
    except ServiceError as exc:
        return await _team_page(
            request, member, runtime, errors={f"member-{member_id}": exc.message}, status=422
        )
    return redirect(request, "/team", flash=N_("The role is changed."))


@router.post("/team/{member_id}/remove")
async def remove(
    request: Request, member_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    try:
        await team.remove_member(runtime.db, actor=member.actor, member_id=member_id)
    except NotFound:
        raise
    except ServiceError as exc:
        return await _team_page(
            request, member, runtime, errors={f"member-{member_id}": exc.message}, status=422
        )
    return redirect(request, "/team", flash=N_("The member is removed and signed out."))


# -- accepting an invitation (before sign-in) --------------------------------------------


def _invite_page(
    request: Request,
    token: str,
    *,
    invited: team.InvitedMember | None,
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    form = form_token(request)
    response = page(
        request,
        "invite.html",
        member=None,
        status=status,
        form_token=form,
        token=token,
        invited=invited,
        role_names=ROLE_NAMES,
        errors=errors,
    )
    set_cookie(response, request, FORM_COOKIE, form, max_age=3600)
    return response


@router.get("/invite/{token}")
async def invite_page(request: Request, token: str, db: DatabaseDep) -> Response:
    try:
        invited = await team.find_invite(db, token=token)
    except NotFound as exc:
        return _invite_page(request, token, invited=None, errors=errors_of(exc), status=404)
    return _invite_page(request, token, invited=invited, errors={})


@router.post("/invite/{token}", dependencies=[Depends(check_form_cookie)])
async def accept_invite(
    request: Request, token: str, db: DatabaseDep, password: Text = ""
) -> Response:
    try:
        new = await team.accept_invite(db, token=token, password=password)
    except NotFound as exc:
        return _invite_page(request, token, invited=None, errors=errors_of(exc), status=404)
    except ServiceError as exc:
        invited = await team.find_invite(db, token=token)
        return _invite_page(request, token, invited=invited, errors=errors_of(exc), status=422)
    response = redirect(request, "/dashboard", flash=N_("Welcome! Your password is set."))
    set_cookie(response, request, SESSION_COOKIE, new.token, max_age=SESSION_DAYS * 86400)
    response.delete_cookie(FORM_COOKIE, path="/")
    return response
