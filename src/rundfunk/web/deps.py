"""Request dependencies: the process's ``Runtime``, and who is calling (bearer token auth).

Every ``/api/v1`` route depends on ``current_actor``: the token is looked up through
``services.api_tokens.authenticate`` on every request (no per-process cache, so a
revoked token is refused at once on every node) and becomes an ``Actor`` scoped to one
workspace; its use is noted by ``web.token_use`` (written at most once a minute).
Services check roles themselves (``actor.require``); ``require_role`` lets a
route state its minimum role up front as well, which also documents it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rundfunk.db.session import Database
from rundfunk.services.actors import Actor, Role
from rundfunk.services.api_tokens import authenticate
from rundfunk.web.errors import unauthorized
from rundfunk.web.token_use import TokenUse
from rundfunk.worker.runtime import Runtime

# Tokens we issue are far shorter; anything longer is not worth hashing.
_MAX_TOKEN_LENGTH = 256

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `Authorization: Bearer <token>` (create one with the CLI).",
)


def get_runtime(request: Request) -> Runtime:
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the app has no runtime; was its lifespan started?")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Database:
    return runtime.db


DatabaseDep = Annotated[Database, Depends(get_db)]


def _token_use(request: Request, db: Database) -> TokenUse:
    use = getattr(request.app.state, "token_use", None)
    if not isinstance(use, TokenUse) or use.db is not db:
        use = request.app.state.token_use = TokenUse(db)
    return use


async def current_actor(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None:
        raise unauthorized("send an API token as 'Authorization: Bearer <token>'")
    token = credentials.credentials.strip()
    found = None
    if token and len(token) <= _MAX_TOKEN_LENGTH:
        found = await authenticate(db, token)
    if found is None:
        raise unauthorized("the API token is unknown or revoked")
    _token_use(request, db).note(found.token_id, found.last_used_at)
    return found.actor


ActorDep = Annotated[Actor, Depends(current_actor)]


def require_role(role: Role) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency that yields the caller, or answers 403 below ``role``."""

    async def dependency(actor: ActorDep) -> Actor:
        actor.require(role)
        return actor

    dependency.__name__ = f"require_{role.value}"
    return dependency


EditorDep = Annotated[Actor, Depends(require_role(Role.EDITOR))]
AdminDep = Annotated[Actor, Depends(require_role(Role.ADMIN))]
