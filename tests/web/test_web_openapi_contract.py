"""The OpenAPI document is true to the answers, for every operation in it (new routes
included): parameters bounded, every error the app can give documented in the error
shape, the right media types, and a 405 that names every method of the path.

The schema-driven fuzz test (``tests/e2e/test_e2e_fuzz.py``) checks the answers against
this document; these tests check the document itself, and the conventions a route has
to follow (``web.api.fields``: ``PathId``, ``AfterId``, ``limit`` fields, ``Name``...).
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx

from rundfunk.config import Settings
from rundfunk.db.types import MAX_ID
from rundfunk.web.app import create_app

METHODS = {"get", "put", "post", "delete", "patch"}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@functools.cache
def _document() -> dict[str, Any]:
    """The document /openapi.json serves, made once (it needs no database)."""
    data = Path(tempfile.mkdtemp(prefix="rundfunk-openapi-"))
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data}/x.db", demo=False)
    return create_app(settings).openapi()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and, for ``X | None``, each of its non-null alternatives."""
    options = schema.get("anyOf", [schema])
    return [o for o in options if o.get("type") != "null"]


def test_every_parameter_is_bounded() -> None:
    schema = _document()
    loose: list[str] = []
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] not in {"path", "query"}:
                continue
            where = f"{method.upper()} {path} {parameter['in']}.{parameter['name']}"
            for variant in _variants(parameter["schema"]):
                kind = variant.get("type")
                if kind == "integer":
                    low, high = variant.get("minimum"), variant.get("maximum")
                    if low is None or high is None or low < 0 or high > MAX_ID:
                        loose.append(f"{where}: integer needs 0/1 <= minimum, maximum <= 2^63-1")
                elif kind == "string":
                    if "enum" not in variant and "maxLength" not in variant:
                        loose.append(f"{where}: string needs maxLength (or an enum)")
                elif kind not in {"boolean"} and "enum" not in variant:
                    loose.append(f"{where}: {variant} is not bounded")
    assert not loose, "\n".join(loose)


def test_every_error_is_documented_in_the_error_shape() -> None:
    schema = _document()
    missing: list[str] = []
    for path, method, operation in _operations(schema):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        wanted = {"422"}
        if operation.get("security"):
            wanted |= {"401", "403"}
        if "{" in path:
            wanted.add("404")
        if "requestBody" in operation:
            wanted.add("413")
        for status in sorted(wanted - set(responses)):
            missing.append(f"{where}: {status} not documented")
        for status, response in responses.items():
            content = response.get("content")
            if 400 <= int(status) < 500 and content != {"application/json": {"schema": ERROR_REF}}:
                missing.append(f"{where}: {status} is not the ErrorResponse JSON")
            elif int(status) >= 500 and set(content or {}) != {"application/json"}:
                missing.append(f"{where}: {status} is not documented as JSON")
    assert not missing, "\n".join(missing)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    # A model of its own stays: /readyz's 503 carries the readiness, not an error.
    ready = schema["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert ready == {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}


async def test_the_webhook_verification_documents_text_and_json(
    client: httpx.AsyncClient, tenant: Any
) -> None:
    schema = _document()
    verify = schema["paths"]["/webhooks/whatsapp/{channel_id}"]["get"]["responses"]
    assert set(verify["200"]["content"]) == {"text/plain"}
    assert verify["404"]["content"] == {"application/json": {"schema": ERROR_REF}}
    # The sandbox channel is no WhatsApp channel: a JSON 404, as documented.
    answer = await client.get(f"/webhooks/whatsapp/{tenant.channel_id}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")


async def test_a_405_lists_every_method_of_the_path(client: httpx.AsyncClient, tenant: Any) -> None:
    schema = _document()
    checked = 0
    for path, item in schema["paths"].items():
        documented = {m.upper() for m in item if m in METHODS}
        if len(documented) < 2:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        answer = await client.request("OPTIONS", url, headers=tenant.auth())
        assert answer.status_code == 405, (path, answer.text)
        assert set(answer.headers["allow"].split(", ")) == documented, path
        checked += 1
    assert checked >= 8
