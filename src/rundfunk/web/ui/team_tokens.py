"""The team page's API tokens section: create (the secret is shown once), revoke, rotate.

Admins and owners only, like the rest of the team page; nobody creates, revokes or
rotates a token with a role above their own (``services.api_tokens``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rundfunk.services import api_tokens
from rundfunk.services.errors import Forbidden, NotFound, ServiceError
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, redirect
from rundfunk.web.ui.session import AdminDep
from rundfunk.web.ui.team import _team_page

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]


def _form_errors(exc: ServiceError) -> dict[str, str]:
    """A refusal next to the token form's own fields (the invitation form has a name too)."""
    return {f"token_{k}" if k in {"name", "role"} else k: v for k, v in errors_of(exc).items()}


def _section_error(exc: ServiceError) -> dict[str, str]:
    """A refusal of a row's button, shown above the tokens table."""
    [message] = errors_of(exc).values()
    return {"_": message}


def _status(exc: ServiceError) -> int:
    return 403 if isinstance(exc, Forbidden) else 422


@router.post("/team/tokens")
async def create(
    request: Request,
    member: AdminDep,
    runtime: RuntimeDep,
    token_name: Text = "",
    token_role: Text = "editor",
) -> Response:
    values = {"name": token_name, "role": token_role}
    try:
        made = await api_tokens.create_token(
            runtime.db, actor=member.actor, name=token_name, role=token_role
        )
    except ServiceError as exc:
        return await _team_page(
            request,
            member,
            runtime,
            token_errors=_form_errors(exc),
            token_values=values,
            status=_status(exc),
        )
    # Shown now and never again: only the token's hash is stored.
    return await _team_page(request, member, runtime, new_token=made)


@router.post("/team/tokens/{token_id}/rotate")
async def rotate(
    request: Request, token_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    try:
        made = await api_tokens.rotate_token(runtime.db, actor=member.actor, token_id=token_id)
    except NotFound:
        raise
    except ServiceError as exc:
        return await _team_page(
            request, member, runtime, token_errors=_section_error(exc), status=_status(exc)
        )
    return await _team_page(request, member, runtime, new_token=made)


@router.post("/team/tokens/{token_id}/revoke")
async def revoke(
    request: Request, token_id: int, member: AdminDep, runtime: RuntimeDep
) -> Response:
    try:
        await api_tokens.revoke_token(runtime.db, actor=member.actor, token_id=token_id)
    except NotFound:
        raise
    except ServiceError as exc:
        return await _team_page(
            request, member, runtime, token_errors=_section_error(exc), status=_status(exc)
        )
    return redirect(request, "/team#api-tokens", flash=N_("The token is revoked."))
