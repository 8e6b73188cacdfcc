"""The Graph API endpoints: routing by node and edge, token check, latency, lost answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from . import media, profile
from .errors import UNKNOWN_NODE, GraphError, check_token
from .templates import list_templates
from .validation import read_json

if TYPE_CHECKING:
    from .server import FakeGraph

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GraphRoutes:
    """``/{version}/{node}[/{edge}]`` and the media download URL of one ``FakeGraph``."""

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/media/{media_id}", partial(media.download_media, self.graph))
        version = r"{version:v\d+\.\d+}"
        app.router.add_route("*", f"/{version}/{{node}}", self.graph_request)
        app.router.add_route("*", f"/{version}/{{node}}/{{edge}}", self.graph_request)

    def route(self, method: str, node: str, edge: str | None) -> tuple[str, Handler | None]:
        """The endpoint's name (counted in ``graph.requests``) and its handler, if any."""
        graph = self.graph
        if node == graph.phone_number_id:
            table: dict[tuple[str, str | None], tuple[str, Handler]] = {
                ("GET", None): ("phone_number", partial(profile.phone_number, graph)),
                ("POST", "messages"): ("messages", self.send),
                ("POST", "media"): ("media_upload", self.upload_media),
                ("GET", "whatsapp_business_profile"): (
                    "business_profile_get",
                    partial(profile.get_profile, graph),
                ),
                ("POST", "whatsapp_business_profile"): (
                    "business_profile_update",
                    partial(profile.post_profile, graph),
                ),
            }
            found = table.get((method, edge))
        elif node == graph.waba_id and method == "GET" and edge == "message_templates":
            found = ("message_templates", partial(list_templates, graph.templates))
        elif node in graph.media and method == "GET" and edge is None:
            found = ("media_info", partial(media.media_info, graph))
        else:
            found = None
        return found if found is not None else ("unsupported", None)

    async def graph_request(self, request: web.Request) -> web.StreamResponse:
        graph = self.graph
        node, edge = request.match_info["node"], request.match_info.get("edge")
        endpoint, handler = self.route(request.method, node, edge)
        graph.requests[endpoint] += 1
        if graph.latency > 0:
            await asyncio.sleep(graph.latency)
        try:
            check_token(request, graph.access_token)
            if handler is None:
                raise GraphError(
                    100,
                    message=UNKNOWN_NODE.format(method=request.method.lower(), node=node),
                    error_type="GraphMethodException",
                )
            return await handler(request)
        except GraphError as exc:
            return web.json_response(exc.body(), status=exc.http_status)

    async def send(self, request: web.Request) -> web.StreamResponse:
        """``POST /{phone_number_id}/messages``; ``network_error_share`` loses answers."""
        graph = self.graph
        drop = graph.network_error_share > 0 and graph.rng.random() < graph.network_error_share
        if drop and not graph.network_error_accepts:
            return self._drop(request)
        try:
            answer = graph._accept(await read_json(request))
        except GraphError:
            if drop:
                return self._drop(request)
            raise
        if drop:  # accepted, statuses on their way, but the answer is lost
            return self._drop(request)
        return web.json_response(answer)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Closing the socket before any byte of the answer: the client sees
        # ServerDisconnectedError; aiohttp's write of the response then fails quietly.
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    async def upload_media(self, request: web.Request) -> web.StreamResponse:
        mime, data = await media.read_upload(request)
        media_id = self.graph._next_id("9")
        self.graph.media[media_id] = data
        self.graph.media_types[media_id] = mime
        return web.json_response({"id": media_id})
