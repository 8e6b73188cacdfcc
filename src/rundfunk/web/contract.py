"""The OpenAPI document, true to the answers the app gives.

FastAPI documents what each route declares; some answers come from layers around the
routes and are completed here, once, for every operation in the schema (so routes
added later are covered without doing anything):

- ``413`` on every operation with a request body (``web.limits.BodyLimitMiddleware``);
- ``422`` on every operation: any query parameter holding a NUL is refused
  (``web.request_checks``), also on routes that declare no parameters;
- every error answer in the project's shape (``ErrorResponse``) as ``application/json``
  (unless a route declared a model of its own for it, as ``/readyz`` does for its 503),
  also on routes whose success is something else (the webhook verification echoes the
  challenge as ``text/plain``), and FastAPI's own ``HTTPValidationError`` replaced by it,
  since ``web.errors`` answers validation errors in that shape.

A ``405``'s ``Allow`` header lists every method of the path (``web.errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from rundfunk.web.errors import ErrorResponse

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_ERROR_CONTENT = {"application/json": {"schema": _ERROR_REF}}
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_ADDED = {
    "413": "The request body is too large (code too_large).",
    "422": "A field or parameter is missing or not acceptable (code invalid).",
}


def _complete_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("413", {"description": _ADDED["413"]})
    responses.setdefault("422", {"description": _ADDED["422"]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400 and _is_error_shape(response):
            response["content"] = _ERROR_CONTENT


def _is_error_shape(response: dict[str, Any]) -> bool:
    """Whether a declared error answer is ours (or FastAPI's default for validation),
    whatever media type FastAPI put it under; a model of its own (``/readyz``'s 503
    carries the readiness) is left as declared."""
    schemas = [media.get("schema") or {} for media in response.get("content", {}).values()]
    return all(
        not schema or schema.get("$ref", "").endswith(("/ErrorResponse", "/HTTPValidationError"))
        for schema in schemas
    )


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Complete a generated OpenAPI document in place (see the module's docstring)."""
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _METHODS and isinstance(operation, dict):
                _complete_operation(operation)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in components:
        components["ErrorResponse"] = ErrorResponse.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name, sub in components["ErrorResponse"].pop("$defs", {}).items():
            components.setdefault(name, sub)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_contract(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (and to ``/docs``)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
