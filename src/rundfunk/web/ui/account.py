"""Signing in and out, the first-run setup, and a member's own account page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rundfunk.services import sessions
from rundfunk.services.errors import ServiceError
from rundfunk.services.sessions import SESSION_DAYS
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect, safe_next
from rundfunk.web.ui.session import (
    FORM_COOKIE,
    SESSION_COOKIE,
    AgentDep,
    check_form_cookie,
    form_token,
    optional_member,
    set_cookie,
)

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
FormChecked = Depends(check_form_cookie)


def _anonymous_page(
    request: Request, template: str, status: int = 200, **context: object
) -> Response:
    token = form_token(request)
    response = page(request, template, member=None, status=status, form_token=token, **context)
    set_cookie(response, request, FORM_COOKIE, token, max_age=3600)
    return response


def _signed_in(request: Request, new: sessions.NewSession, target: str) -> RedirectResponse:
    response = redirect(request, target)
    set_cookie(response, request, SESSION_COOKIE, new.token, max_age=SESSION_DAYS * 86400)
    response.delete_cookie(FORM_COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request, db: DatabaseDep) -> Response:
    if await optional_member(request, db) is not None:
        return redirect(request, "/dashboard")
    if await sessions.needs_setup(db):
        return redirect(request, "/setup")
    return redirect(request, "/login")


@router.get("/login")
async def login_page(request: Request, db: DatabaseDep, next: str = "") -> Response:
    if await sessions.needs_setup(db):
        return redirect(request, "/setup")
    return _anonymous_page(request, "login.html", errors={}, email="", next=safe_next(next))


@router.post("/login", dependencies=[FormChecked])
async def login(
    request: Request,
    db: DatabaseDep,
    email: Text = "",
    password: Text = "",
    next: Text = "",
) -> Response:
    client = request.client.host if request.client else "unknown"
    try:
        new = await sessions.log_in(db, email=email, password=password, client=client)
    except ServiceError as exc:
        status = 429 if exc.code == "throttled" else 422
        return _anonymous_page(
            request, "login.html", status, errors=errors_of(exc), email=email, next=safe_next(next)
        )
    return _signed_in(request, new, safe_next(next))


@router.post("/logout")
async def logout(request: Request, member: AgentDep, db: DatabaseDep) -> Response:
    await sessions.log_out(db, session_id=member.session_id)
    response = redirect(request, "/login", flash=N_("You are signed out."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/setup")
async def setup_page(request: Request, db: DatabaseDep) -> Response:
    if not await sessions.needs_setup(db):
        return redirect(request, "/login")
    values = {"workspace": "", "name": "", "email": ""}
    return _anonymous_page(request, "setup.html", errors={}, values=values)


@router.post("/setup", dependencies=[FormChecked])
async def setup(
    request: Request,
    db: DatabaseDep,
    workspace: Text = "",
    name: Text = "",
    email: Text = "",
    password: Text = "",
) -> Response:
    values = {"workspace": workspace, "name": name, "email": email}
    try:
        new = await sessions.set_up_owner(
            db,
            workspace_name=workspace,
            name=name,
            email=email,
            password=password,
            sandbox=request.app.state.settings.sandbox_enabled,
        )
    except ServiceError as exc:
        return _anonymous_page(request, "setup.html", 422, errors=errors_of(exc), values=values)
    return _signed_in(request, new, "/dashboard")


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, member: AgentDep) -> Response:
    return page(request, "account.html", member=member, errors={})


@router.post("/account/password")
async def change_password(
    request: Request,
    member: AgentDep,
    db: DatabaseDep,
    current_password: Text = "",
    new_password: Text = "",
) -> Response:
    try:
        await sessions.change_password(
            db, member=member, current=current_password, new=new_password
        )
    except ServiceError as exc:
        return page(request, "account.html", member=member, status=422, errors=errors_of(exc))
    return redirect(request, "/account", flash=N_("Your password has been changed."))


@router.post("/account/language")
async def change_language(
    request: Request, member: AgentDep, db: DatabaseDep, locale: Text = ""
) -> Response:
    try:
        await sessions.set_locale(db, member=member, locale=locale)
    except ServiceError as exc:
        return page(request, "account.html", member=member, status=422, errors=errors_of(exc))
    return redirect(request, "/account", flash=N_("Language saved."))
