"""The FastAPI application: REST API v1, webhooks, the console, the sandbox phones,
health, readiness and metrics (web.ops), and the Runtime's life.

``create_app`` wires routes and error handlers; its lifespan opens the process's
``Runtime`` (database, channels, and the in-process worker unless told otherwise) or
uses the one it was given, which the caller then also closes. Either way it runs the
webhook ingestion (group committer and inbox applier) of this web process and, on the
way out, stores and applies what is waiting before the runtime closes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from rundfunk import __version__
from rundfunk.config import Settings
from rundfunk.web import ops, sandbox, webhooks
from rundfunk.web.api import (
    audit,
    broadcasts,
    channels,
    contact_blocking,
    contacts,
    conversations,
    dead_letters,
    tokens,
    topics,
    whatsapp,
    workspace,
)
from rundfunk.web.api_docs import install_api_docs
from rundfunk.web.contract import install_contract
from rundfunk.web.deps import current_actor
from rundfunk.web.errors import ERROR_RESPONSES, install_error_handlers
from rundfunk.web.limits import BodyLimitMiddleware
from rundfunk.web.request_checks import storable_request
from rundfunk.web.ui import install_console
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.webhook_ingest import WebhookIngestion

# Generous for any JSON we accept (4096-character texts), small enough to shrug off junk.
MAX_BODY_BYTES = 1024 * 1024
# Media uploads: WhatsApp's largest file (a 100 MB document) plus the form around it.
UPLOAD_PATH = re.compile(r"/api/v1/channels/\d+/media")
MAX_UPLOAD_BYTES = 101 * 1024 * 1024

_DESCRIPTION = """
Broadcasts to opted-in messenger subscribers and private 1:1 conversations in a team
inbox. Authenticate every `/api/v1` request with `Authorization: Bearer <token>`.
Every error is `{"error": {"code": "...", "message": "..."}}`.
"""


def api_router() -> APIRouter:
    """Every /api/v1 route, each behind the bearer-token dependency."""
    router = APIRouter(
        prefix="/api/v1", dependencies=[Depends(current_actor)], responses=ERROR_RESPONSES
    )
    modules = (channels, whatsapp, topics, contacts, broadcasts, conversations, workspace, audit)
    for module in (*modules, tokens, contact_blocking):
        router.include_router(module.router)
    router.include_router(dead_letters.router)  # GET /webhooks/failed, retry, discard
    return router


@asynccontextmanager
async def _ingesting(app: FastAPI, ingestion: WebhookIngestion) -> AsyncIterator[None]:
    """Webhooks are stored and applied while the app serves (stored ones left by a
    crash are applied at once); on the way out, what waits is stored and applied."""
    app.state.ingestion = ingestion
    ingestion.start()
    try:
        yield
    finally:
        await ingestion.close()


def create_app(
    settings: Settings, *, run_worker: bool = True, runtime: Runtime | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            async with _ingesting(app, app.state.ingestion):
                yield
            return
        created = await Runtime.create(settings, run_worker=run_worker)
        app.state.runtime = created
        try:
            async with _ingesting(app, WebhookIngestion(created)):
                yield
        finally:
            await created.close()

    app = FastAPI(
        title="Rundfunk",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        # Before every route: text no database can store is a 422 naming the field.
        dependencies=[Depends(storable_request)],
        docs_url=None,  # our own /docs (web.api_docs): no CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    if runtime is not None:
        # Usable at once, also by clients (httpx's ASGITransport) that skip the lifespan;
        # the ingestion then starts with the first webhook, and the caller closes it.
        app.state.runtime = runtime
        app.state.ingestion = WebhookIngestion(runtime)
    install_error_handlers(app)
    install_contract(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=MAX_BODY_BYTES,
        larger={UPLOAD_PATH: MAX_UPLOAD_BYTES},
    )

    # Webhooks first: the busiest route (thousands of POSTs a second) is matched before
    # the API's and the console's many others are tried.
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    app.include_router(api_router())
    install_console(app)
    install_api_docs(app)
    if settings.sandbox_enabled:
        app.include_router(sandbox.router)
    return app
