"""Routes for the machines that run Rundfunk: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` (liveness) says the process answers and nothing more: a restart would
not fix a database outage. ``/readyz`` (readiness) says this process can do its work:
the database answers within ``READY_TIMEOUT_SECONDS`` and its schema is at the
newest migration — a load balancer should send no traffic until it is 200.
``/metrics`` is this process's Prometheus exposition (see rundfunk.metrics).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from rundfunk.db.migrate import alembic_config
from rundfunk.db.session import Database
from rundfunk.metrics import QueueDepth, check_access
from rundfunk.web.errors import ERROR_RESPONSES, error_response

# Long enough for a busy PostgreSQL, short enough that a probe (often 1–5 s) does not
# give up first and learns nothing.
READY_TIMEOUT_SECONDS = 2.0
_VERSION_TABLE = "alembic_version"  # alembic's default; migrations/env.py keeps it

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = Field(default=None, description="Why not ready, for a person.")
    revision: str | None = Field(default=None, description="The database's schema revision.")
    note: str | None = Field(default=None, description="Ready, but worth a look.")


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers. Touches nothing else."""
    return Health()


@dataclass(frozen=True)
class _Revisions:
    heads: frozenset[str]
    known: frozenset[str]


@cache
def _revisions() -> _Revisions:
    """This release's migrations: the newest, and every one it knows."""
    script = ScriptDirectory.from_config(alembic_config())
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return _Revisions(frozenset(script.get_heads()), known)


def _current_revisions(conn: Connection) -> frozenset[str]:
    # Read directly: alembic's MigrationContext logs two INFO lines per call, and a
    # load balancer probes every few seconds.
    if not inspect(conn).has_table(_VERSION_TABLE):
        return frozenset()
    return frozenset(conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars())


async def _readiness(db: Database) -> Readiness:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        current = await conn.run_sync(_current_revisions)
    ours = _revisions()
    revision = ",".join(sorted(current)) or None
    if current == ours.heads:
        return Readiness(status="ready", revision=revision)
    if current <= ours.known:  # behind (or empty): this release would miss tables/columns
        return Readiness(
            status="not_ready",
            reason=f"database schema is at {revision or 'no revision'}, this release needs "
            f"{','.join(sorted(ours.heads))}: run rundfunk migrate",
            revision=revision,
        )
    # A revision this release does not know: a newer release migrated during a rolling
    # upgrade. This process keeps serving until it is replaced (that needs additive
    # migrations, see docs/deployment.md) instead of every old process leaving the
    # load balancer at the same moment.
    return Readiness(
        status="ready",
        revision=revision,
        note="database schema is newer than this release; upgrade this process",
    )


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "Not ready; `reason` says why."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is at this release's migration."""
    db: Database = request.app.state.runtime.db
    try:
        readiness = await asyncio.wait_for(_readiness(db), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        readiness = Readiness(
            status="not_ready",
            reason=f"database did not answer within {READY_TIMEOUT_SECONDS:g} s",
        )
    except Exception as exc:
        # The probe is public: the class says enough there, the log has the details.
        log.warning("readiness: the database does not answer: %r", exc)
        readiness = Readiness(
            status="not_ready", reason=f"database unreachable ({type(exc).__name__})"
        )
    status = 200 if readiness.status == "ready" else 503
    return JSONResponse(readiness.model_dump(exclude_none=True), status_code=status)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
        401: ERROR_RESPONSES[401],
        403: {**ERROR_RESPONSES[403], "description": "Not from this machine, and no token."},
    },
)
async def metrics(request: Request) -> Response:
    """This process's metrics. ``Authorization: Bearer <RUNDFUNK_METRICS_TOKEN>`` when
    that is set; otherwise only from this machine."""
    settings = request.app.state.settings
    headers = request.headers
    refusal = check_access(
        settings.metrics_token,
        authorization=headers.get("authorization"),
        peer=request.client.host if request.client else None,
        forwarded="x-forwarded-for" in headers or "forwarded" in headers,
    )
    if refusal is not None:
        extra = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return error_response(refusal.status, refusal.code, refusal.message, headers=extra)
    await _queue_depth(request).refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _queue_depth(request: Request) -> QueueDepth:
    state: Any = request.app.state
    db: Database = state.runtime.db
    depth: QueueDepth | None = getattr(state, "queue_depth", None)
    if depth is None or depth.db is not db:
        depth = state.queue_depth = QueueDepth(db)
    return depth
