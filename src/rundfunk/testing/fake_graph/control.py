"""The control endpoints ``/_fake/*`` (no auth), for driving the fake as a process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .errors import GraphError
from .validation import obj_param

if TYPE_CHECKING:
    from .server import FakeGraph


class Control:
    """Handlers of ``/_fake/*`` over one ``FakeGraph``."""

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_fake/sent", self.sent)
        app.router.add_get("/_fake/stats", self.stats)
        app.router.add_get("/_fake/config", self.config)
        app.router.add_post("/_fake/config", self.config)
        app.router.add_post("/_fake/templates", self.add_template)
        app.router.add_post("/_fake/templates/status", self.template_status)
        app.router.add_post("/_fake/users/{wa_id}/messages", self.user_writes)
        app.router.add_post("/_fake/users/{wa_id}/preferences", self.user_preferences)
        app.router.add_post("/_fake/drain", self.drain)
        app.router.add_post("/_fake/reset", self.reset)

    async def sent(self, request: web.Request) -> web.StreamResponse:
        offset = int(request.query.get("offset", "0"))
        rows = [
            {
                "wamid": m.wamid,
                "to": m.to,
                "type": m.type,
                "callback_data": m.callback_data,
                "at": m.at,
            }
            for m in self.graph.sent[offset:]
        ]
        return web.json_response(rows)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        graph = self.graph
        counts = graph.count_by_recipient()
        webhooks = graph._webhooks
        return web.json_response(
            {
                "sent": len(graph.sent),
                "recipients": len(counts),
                "max_per_recipient": max(counts.values(), default=0),
                "recipients_with_duplicates": sum(1 for n in counts.values() if n > 1),
                "statuses_emitted": graph.statuses_emitted,
                "webhook_posts": graph.webhook_posts,
                "webhook_failures": graph.webhook_failures,
                "webhook_dropped": graph.webhook_dropped,
                "webhook_pending": bool(webhooks.timers or webhooks.pending or webhooks.tasks),
                "requests": dict(graph.requests),
            }
        )

    async def config(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                self.graph.configure(**obj_param(await request.json(), "config"))
            except (ValueError, KeyError, GraphError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.graph.config())

    async def add_template(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(self.graph.add_template(**await request.json()))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def template_status(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(self.graph.set_template_status(**await request.json()))
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def user_writes(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        message_id = await self.graph.user_writes(
            request.match_info["wa_id"],
            body.get("text", "START"),
            name=body.get("name", "Anna"),
            message=body.get("message"),
        )
        return web.json_response({"id": message_id})

    async def user_preferences(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        try:
            await self.graph.user_preferences(
                request.match_info["wa_id"], body.get("value", "stop")
            )
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"success": True})

    async def drain(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        try:
            await self.graph.drain(float(body.get("timeout", 10.0)))
        except TimeoutError as exc:
            return web.json_response({"drained": False, "error": str(exc)}, status=504)
        return web.json_response({"drained": True})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        self.graph.reset(templates=bool(body.get("templates", False)))
        return web.json_response({"reset": True})
