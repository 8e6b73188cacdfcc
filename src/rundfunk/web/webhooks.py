"""Provider webhooks: ``GET|POST /webhooks/whatsapp/{channel_id}``.

No bearer token: the platform proves itself by the signature over the raw body
(``X-Hub-Signature-256``, HMAC-SHA256 with the app secret), checked in constant time
before anything is parsed or stored. A verified body that parses is handed to the
process's group committer (``worker.webhook_ingest``), which writes it to the webhook
inbox together with the other webhooks arriving within a few milliseconds; the route
answers 200 only once that transaction has committed, and 503 when it failed — the
platform retries anything but a 2xx for days. The events are carried out shortly
after, in batches, by the inbox's applier. Each POST's time to answer is observed in
``rundfunk_webhook_duration_seconds`` by channel kind.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from rundfunk.channels.base import SignatureError
from rundfunk.channels.whatsapp import webhook as wire
from rundfunk.channels.whatsapp.channel import WhatsAppChannel
from rundfunk.metrics import WEBHOOK_SECONDS
from rundfunk.services.errors import NotFound
from rundfunk.web.api.fields import PathId
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.errors import ERROR_RESPONSES, error_response
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.webhook_ingest import WebhookIngestion

log = logging.getLogger(__name__)
_OK = b'{"ok":true}'  # the answer to a stored webhook, encoded once
P = ParamSpec("P")
R = TypeVar("R")

router = APIRouter(
    prefix="/webhooks",
    tags=["webhooks"],
    responses={
        **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404)},
        503: {"description": "The webhook could not be stored; the platform retries it."},
    },
)


def _timed(kind: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Observe a webhook route's time to answer (FastAPI still sees its signature)."""
    histogram = WEBHOOK_SECONDS.labels(channel_kind=kind)

    def decorate(route: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(route)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with histogram.time():
                return await route(*args, **kwargs)

        return timed

    return decorate


async def _whatsapp(runtime: Runtime, channel_id: int) -> WhatsAppChannel | None:
    """The live channel (cached by the registry: no query per webhook), if it is WhatsApp."""
    try:
        channel = await runtime.registry.get(channel_id)
    except NotFound:
        return None
    return channel if isinstance(channel, WhatsAppChannel) else None


@router.get("/whatsapp/{channel_id}", response_class=PlainTextResponse)
async def whatsapp_verify(channel_id: PathId, request: Request, runtime: RuntimeDep) -> Response:
    """Meta's verification handshake: echo ``hub.challenge`` when the verify token matches."""
    channel = await _whatsapp(runtime, channel_id)
    if channel is None:
        return error_response(404, "not_found", f"no WhatsApp channel {channel_id}")
    challenge = wire.handshake(dict(request.query_params), channel.config.verify_token)
    if challenge is None:
        return error_response(
            403, "forbidden", "hub.mode must be subscribe and hub.verify_token must match"
        )
    return PlainTextResponse(challenge)


@router.post(
    "/whatsapp/{channel_id}",
    response_class=Response,
    responses={
        200: {
            "description": 'Stored durably (`{"ok": true}`); carried out shortly after.',
            "content": {"application/json": {"example": {"ok": True}}},
        }
    },
)
@_timed("whatsapp")
async def whatsapp_events(channel_id: PathId, request: Request) -> Response:
    """Inbound messages, statuses, consent and template updates from the Cloud API."""
    # The runtime straight from the app, not through ``RuntimeDep``: a plain function
    # as a dependency runs on a worker thread, a thread hop per POST at thousands a second.
    runtime: Runtime = request.app.state.runtime
    channel = await _whatsapp(runtime, channel_id)
    if channel is None:
        return error_response(404, "not_found", f"no WhatsApp channel {channel_id}")
    body = await request.body()
    try:
        channel.verify(request.headers, body)
    except SignatureError as exc:
        log.warning("webhook for channel %s rejected: %s", channel_id, exc)
        return error_response(401, "bad_signature", str(exc))
    try:
        channel.parse(body)  # refuse what is no webhook now: the platform will not resend it
    except wire.MalformedWebhook as exc:
        return error_response(400, "bad_webhook", str(exc))
    ingestion: WebhookIngestion = request.app.state.ingestion
    try:
        await ingestion.submit(channel_id, body)
    except Exception as exc:  # not stored: the platform must send it again
        log.warning("webhook for channel %s not stored: %s", channel_id, exc)
        return error_response(503, "unavailable", "the webhook could not be stored; retry")
    return Response(_OK, media_type="application/json")
