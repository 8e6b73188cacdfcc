"""Who is using the console: the session cookie, the role a page needs, and CSRF.

Every console route depends on one of ``AgentDep``, ``EditorDep``, ``AdminDep`` or
``OwnerDep``. The dependency finds the member behind the session cookie (no session:
``LoginRequired``, which sends a browser to the sign-in page), answers 403 below the
role, and for every state-changing method checks the session's CSRF token, sent as
the form field ``csrf_token`` or the header ``X-CSRF-Token``. Forms without a session
(sign-in, setup, accepting an invitation) use a double-submit cookie instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from rundfunk.services.actors import Role
from rundfunk.services.sessions import SessionMember, session_member
from rundfunk.web.deps import DatabaseDep

SESSION_COOKIE = "rf_session"
FORM_COOKIE = "rf_form"  # the double-submit token of forms shown before sign-in
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No valid session: a page answers with the sign-in page, a script with 401."""


def secure_cookies(request: Request) -> bool:
    return bool(getattr(request.app.state.settings, "public_url", "").startswith("https://"))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )


async def _sent_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, expected: str) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = await _sent_token(request)
    if not expected or not sent or not secrets.compare_digest(sent, expected):
        raise HTTPException(
            403, "the form has expired or did not come from this site; reload the page and retry"
        )


async def check_form_cookie(request: Request) -> None:
    """CSRF for the forms shown before sign-in: the field must echo the form cookie."""
    await check_csrf(request, request.cookies.get(FORM_COOKIE, ""))


def form_token(request: Request) -> str:
    """The double-submit token for a form shown before sign-in (reuses the cookie's)."""
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


async def optional_member(request: Request, db: DatabaseDep) -> SessionMember | None:
    cached = getattr(request.state, "member", None)
    if isinstance(cached, SessionMember):
        return cached
    member = await session_member(db, request.cookies.get(SESSION_COOKIE, ""))
    request.state.member = member
    return member


def console_member(role: Role) -> Callable[..., Awaitable[SessionMember]]:
    """The dependency of a console route that needs ``role`` or higher."""

    async def dependency(
        request: Request,
        member: Annotated[SessionMember | None, Depends(optional_member)],
    ) -> SessionMember:
        if member is None:
            raise LoginRequired()
        if member.role.rank < role.rank:
            raise HTTPException(403, f"this page is for the role {role.value} or higher")
        await check_csrf(request, member.csrf_token)
        return member

    dependency.__name__ = f"console_{role.value}"
    return dependency


AgentDep = Annotated[SessionMember, Depends(console_member(Role.AGENT))]
EditorDep = Annotated[SessionMember, Depends(console_member(Role.EDITOR))]
AdminDep = Annotated[SessionMember, Depends(console_member(Role.ADMIN))]
OwnerDep = Annotated[SessionMember, Depends(console_member(Role.OWNER))]
