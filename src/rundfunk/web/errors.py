"""Every error the web layer returns, in one JSON shape: ``{"error": {"code", "message"}}``.

Service errors map to 4xx by class (``NotFound`` 404, ``Invalid`` 422, ``Conflict`` 409,
``Forbidden`` 403); request validation to 422 with a message naming each field; bad
JSON to 400 ``bad_json``; a missing or unknown token to 401 with ``WWW-Authenticate:
Bearer``; unknown routes to 404. Anything unexpected is logged and answered with a
500 that carries no traceback. ``ERROR_RESPONSES`` declares the shape in OpenAPI.
Console pages (any path outside the API, webhooks and sandbox) get the same errors as
an HTML page instead, through ``app.state.html_error_page``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rundfunk.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    Throttled,
    Upstream,
)

log = logging.getLogger(__name__)

_SERVICE_STATUS: dict[type[ServiceError], int] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Forbidden: 403,
    Upstream: 502,
    Throttled: 429,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# FastAPI's own words when a body cannot be decoded at all (e.g. invalid UTF-8).
_UNPARSABLE_BODY = "There was an error parsing the body"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, invalid, conflict, ...")
    message: str = Field(description="What went wrong, for a human.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


def _declared(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# Declared on every authenticated route; the sandbox declares the subset it can return.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _declared("Malformed JSON (code bad_json)."),
    401: _declared("Missing, unknown or revoked bearer token (code unauthorized)."),
    403: _declared("Your role may not do this (code forbidden)."),
    404: _declared("Not found, or it belongs to another workspace (code not_found)."),
    409: _declared("The current state forbids it (code conflict)."),
    422: _declared("A field is missing or not acceptable (code invalid)."),
}
PUBLIC_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (400, 404, 422)
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def unauthorized(message: str) -> StarletteHTTPException:
    """The 401 for the auth dependency to raise; clients learn to send a bearer token."""
    return StarletteHTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One line per problem, each naming the field: ``body.text: String should ...``."""
    parts: list[str] = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "value_error":
            # Our own validators: their message is already a sentence about the field.
            message = str(error.get("ctx", {}).get("error", message))
        elif error.get("type") in {"dict_type", "model_attributes_type"} and isinstance(
            error.get("input"), bytes | str
        ):
            message = "expected a JSON object; send it with Content-Type: application/json"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "the request is not valid"


# Paths that answer machines; everything else is the console and gets an HTML page.
_MACHINE_PATHS = (
    "/api/",
    "/webhooks/",
    "/sandbox/",
    "/openapi.json",
    "/docs",
    "/healthz",
    "/readyz",
    "/metrics",
)

HtmlErrorPage = Callable[[Request, int, str], Awaitable[Response]]


def _html_page(request: Request) -> HtmlErrorPage | None:
    page: HtmlErrorPage | None = getattr(request.app.state, "html_error_page", None)
    if page is None or request.url.path.startswith(_MACHINE_PATHS):
        return None
    return page


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    status = next((code for cls, code in _SERVICE_STATUS.items() if isinstance(exc, cls)), 400)
    if (page := _html_page(request)) is not None:
        return await page(request, status, exc.message)
    return error_response(status, exc.code, exc.message)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if (page := _html_page(request)) is not None:
        return await page(request, 422, describe_validation_errors(errors))
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = bad_json.get("ctx", {}).get("error", "invalid JSON")
        position = bad_json.get("loc", ("body", 0))[-1]
        return error_response(
            400, "bad_json", f"the body is not valid JSON: {reason} at position {position}"
        )
    return error_response(422, "invalid", describe_validation_errors(errors))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if (page := _html_page(request)) is not None:
        return await page(request, exc.status_code, detail)
    if exc.status_code == 400 and detail == _UNPARSABLE_BODY:
        return error_response(400, "bad_json", "the body could not be decoded as UTF-8 JSON")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route; the API lives under /api/v1 (see /openapi.json)"
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(exc.status_code, code, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method of the path, not only those of the first route that matched it
    (a path's GET and POST are separate routes: Starlette names only one of them)."""
    methods: set[str] = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        for route in request.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                methods.add(method)
                break
    return ", ".join(sorted(methods))


class UnexpectedErrorMiddleware:
    """Answer any exception nobody handled with a JSON 500, and log it with its traceback.

    Starlette's own last-resort handler answers in plain text and re-raises; this one
    sits inside it so clients always get the documented shape and nothing leaks.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean answer; let the server drop the connection
                raise
            response = error_response(500, "internal", "internal error; it has been logged")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(UnexpectedErrorMiddleware)
