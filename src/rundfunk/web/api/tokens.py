"""API tokens of the workspace: list, create (the secret is shown once), revoke, rotate.

Admins and owners only; nobody creates, revokes or rotates a token with a role above
their own. A revoked token is refused (401) from the next request on, on every node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from rundfunk.services import api_tokens as service
from rundfunk.web.api.fields import REQUEST, Name, PathId
from rundfunk.web.deps import AdminDep, RuntimeDep

router = APIRouter(prefix="/tokens", tags=["tokens"])

RoleName = Literal["owner", "admin", "editor", "agent"]


class TokenCreate(BaseModel):
    model_config = REQUEST

    name: Name = Field(description="What uses the token, e.g. 'newsletter-sync'.")
    role: RoleName = Field(
        default="editor", description="The role the token acts with: at most your own."
    )


class Token(BaseModel):
    id: int
    name: str
    role: RoleName
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    member_id: int | None = Field(description="The member who made it (None: CLI or setup).")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When it was last used, to the minute (None: never)."
    )
    revoked_at: datetime | None = None


class TokenList(BaseModel):
    items: list[Token]


class NewToken(BaseModel):
    token: Token
    secret: str = Field(description="The token itself: shown now and never again.")
    replaces: int | None = Field(
        default=None, description="After a rotation: the id of the token now revoked."
    )


def _token(info: service.TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "role": info.role.value,
        "prefix": info.prefix,
        "member_id": info.member_id,
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


def _new(made: service.NewToken) -> dict[str, Any]:
    return {"token": _token(made.token), "secret": made.secret, "replaces": made.replaces}


@router.get("", response_model=TokenList)
async def list_tokens(
    actor: AdminDep,
    runtime: RuntimeDep,
    include_revoked: Annotated[bool, Query(description="Also list revoked tokens.")] = False,
) -> Any:
    found = await service.list_tokens(runtime.db, actor=actor, include_revoked=include_revoked)
    return {"items": [_token(info) for info in found]}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def create_token(body: TokenCreate, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """A new token; its secret is in this answer only (only its hash is stored)."""
    made = await service.create_token(runtime.db, actor=actor, name=body.name, role=body.role)
    return _new(made)


@router.post("/{token_id}/revoke", response_model=Token)
async def revoke_token(token_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """Revoke a token: every request with it gets 401 from now on, on every node."""
    return _token(await service.revoke_token(runtime.db, actor=actor, token_id=token_id))


@router.post("/{token_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def rotate_token(token_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """A new secret with the same name and role; the old token is revoked at once."""
    return _new(await service.rotate_token(runtime.db, actor=actor, token_id=token_id))
