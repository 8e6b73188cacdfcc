"""Prometheus metrics of one process, and who may read them.

Every process keeps its own counters in prometheus_client's default registry (which
also carries the ``process_*`` and ``python_*`` metrics) and exposes them itself:
``serve`` at ``GET /metrics``, a process without the web server (``rundfunk
worker``) on ``RUNDFUNK_METRICS_PORT`` via ``start_metrics_server``. Prometheus
scrapes each process and sums across them; no shared state, no multiprocess mode.

The metrics carry operational figures only — channel kinds, error codes, counts,
durations — never an address, a name or a text. Still, error rates and queue depth
are a business's traffic, so reading them needs ``RUNDFUNK_METRICS_TOKEN`` or a
request from this machine (``check_access``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from sqlalchemy import func, select

from rundfunk.config import Settings
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import deliveries, messages

log = logging.getLogger(__name__)

SENDS = Counter(
    "rundfunk_sends",
    "Send outcomes recorded by this process's dispatcher.",
    ["channel_kind", "outcome"],
)
SEND_ERRORS = Counter(
    "rundfunk_send_errors",
    "Failed send attempts by the error code the channel mapped them to.",
    ["channel_kind", "code"],
)
INBOUND_MESSAGES = Counter(
    "rundfunk_inbound_messages",
    "Messages people wrote, stored once (duplicates not counted), by the rule applied.",
    ["channel_kind", "action"],
)
WEBHOOK_DEAD_LETTERS = Counter(
    "rundfunk_webhook_dead_letters",
    "Webhook items that could not be applied and went to the dead-letter list, by item kind.",
    ["channel_kind", "item"],
)
BLOCKED_MESSAGES = Counter(
    "rundfunk_blocked_messages",
    "Messages from blocked contacts: stored on the contact, kept out of the inbox.",
    ["channel_kind"],
)
WEBHOOK_SECONDS = Histogram(
    "rundfunk_webhook_duration_seconds",
    "Time from a platform webhook's arrival to our answer (verify, parse, durable write).",
    ["channel_kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LIMITER_WAIT_SECONDS = Histogram(
    "rundfunk_limiter_wait_seconds",
    "How long a send waited for its sender's rate limiter (0 when a slot was free).",
    buckets=(0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
QUEUE_DEPTH = Gauge(
    "rundfunk_queue_depth",
    "Rows waiting (queued) or in flight (sending), counted in the database at scrape time.",
    ["queue", "status"],
)

# Outcome labels; besides these, "deferred" (pair rate: held back, not attempted) and
# "unknown" (the platform may have it; its status callback settles it).
SENT, RETRY, FAILED, SKIPPED, DEFERRED, UNKNOWN = (
    "sent",
    "retry",
    "failed",
    "skipped",
    "deferred",
    "unknown",
)
_QUEUE_STATES = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)


class QueueDepth:
    """``rundfunk_queue_depth`` for one database, recounted at most every ``ttl`` seconds.

    Each count is one range scan of the ``(status, next_attempt_at)`` index; caching
    keeps a busy scraper (or several Prometheus servers) from repeating it. When the
    database does not answer, the samples are removed rather than left stale.
    """

    def __init__(self, db: Database, *, ttl: float = 5.0, timeout: float = 2.0) -> None:
        self.db = db
        self.ttl = ttl
        self.timeout = timeout
        self._counted_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._counted_at < self.ttl:
                return
            try:
                depths = await asyncio.wait_for(self._count(), self.timeout)
            except Exception as exc:  # the scrape must still answer; /readyz says why
                log.warning("counting the queue for metrics failed: %r", exc)
                QUEUE_DEPTH.clear()
                depths = None
            self._counted_at = time.monotonic()
            for (queue, status), depth in (depths or {}).items():
                QUEUE_DEPTH.labels(queue=queue, status=status).set(depth)

    async def _count(self) -> dict[tuple[str, str], int]:
        depths = {(q, s): 0 for q in ("deliveries", "messages") for s in _QUEUE_STATES}
        async with self.db.read() as conn:
            for name, table in (("deliveries", deliveries), ("messages", messages)):
                rows = await conn.execute(
                    select(table.c.status, func.count())
                    .where(table.c.status.in_(_QUEUE_STATES))
                    .group_by(table.c.status)
                )
                for status, count in rows:
                    depths[(name, str(status))] = int(count)
        return depths


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


def check_access(
    token: str | None, *, authorization: str | None, peer: str | None, forwarded: bool
) -> Refusal | None:
    """Who may read the metrics: ``None`` to serve, else why not.

    With ``RUNDFUNK_METRICS_TOKEN`` set, exactly ``Authorization: Bearer <token>``
    (compared in constant time), from anywhere. Without it, only a client on this
    machine — a loopback peer that no proxy forwarded (no ``X-Forwarded-For`` or
    ``Forwarded`` header), so a reverse proxy on the same host does not make the
    metrics public by accident.
    """
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return None
        return Refusal(401, "unauthorized", "send Authorization: Bearer <RUNDFUNK_METRICS_TOKEN>")
    if not forwarded and _is_loopback(peer):
        return None
    return Refusal(
        403,
        "forbidden",
        "metrics answer only on this machine; set RUNDFUNK_METRICS_TOKEN to scrape from elsewhere",
    )


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the separate endpoint of processes without the web server ------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not worth a log line each."""


def _guarded(app: WsgiApp, token: str | None) -> WsgiApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        refusal = check_access(
            token,
            authorization=environ.get("HTTP_AUTHORIZATION"),
            peer=environ.get("REMOTE_ADDR"),
            forwarded="HTTP_X_FORWARDED_FOR" in environ or "HTTP_FORWARDED" in environ,
        )
        if refusal is None:
            yield from app(environ, start_response)
            return
        body = json.dumps({"error": {"code": refusal.code, "message": refusal.message}})
        headers = [("Content-Type", "application/json")]
        if refusal.status == 401:
            headers.append(("WWW-Authenticate", "Bearer"))
        reason = "Unauthorized" if refusal.status == 401 else "Forbidden"
        start_response(f"{refusal.status} {reason}", headers)
        yield body.encode()

    return guarded


def start_metrics_server(settings: Settings) -> WSGIServer | None:
    """Serve this process's metrics on ``RUNDFUNK_HOST``:``RUNDFUNK_METRICS_PORT``.

    For processes without the web server (``rundfunk worker``); ``serve`` has
    ``/metrics`` already. A daemon thread answers scrapes under the same access rule
    as ``/metrics``. Returns ``None`` when no port is configured; otherwise the server,
    whose ``shutdown()`` stops it.

    prometheus_client's own ``start_http_server`` has no hook for a bearer token, so
    this is the same WSGI app and threading server with ``check_access`` in front.
    """
    if settings.metrics_port is None:
        return None
    server = make_server(
        settings.host,
        settings.metrics_port,
        _guarded(make_wsgi_app(), settings.metrics_token),
        _Server,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%s/metrics", settings.host, settings.metrics_port)
    return server
