"""Refuse request bodies above a size limit with the documented JSON error (413).

FastAPI's own ``max_body_size`` answers in plain text when the Content-Length is
already too big; this middleware answers before the app runs in that case, and stops
chunked bodies at the limit by raising an ``HTTPException`` the error handlers turn
into JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rundfunk.web.errors import error_response


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        larger: Mapping[re.Pattern[str], int] | None = None,
    ) -> None:
        """``larger``: paths (regular expressions) allowed a bigger body, e.g. uploads."""
        self.app = app
        self.default_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        max_bytes = next(
            (size for pattern, size in self.larger.items() if pattern.fullmatch(path)),
            self.default_bytes,
        )
        too_large = f"the request body is larger than {max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            response = error_response(413, "too_large", too_large)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise HTTPException(413, detail=too_large)
            return message

        await self.app(scope, limited_receive, send)
