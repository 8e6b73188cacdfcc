"""Auth and the error shape: 401s, unknown routes, bad JSON, 500s, health and OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from rundfunk.config import Settings
from rundfunk.services.actors import Role
from rundfunk.web.app import create_app
from rundfunk.worker.runtime import Runtime


async def test_healthz_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["missing", "unknown", "empty", "basic", "huge"],
)
async def test_api_without_a_valid_token_is_401(
    client: httpx.AsyncClient, tenant, headers, assert_error
) -> None:
    for method, url in [
        ("GET", "/api/v1/channels"),
        ("GET", f"/api/v1/channels/{tenant.channel_id}"),
        ("POST", "/api/v1/broadcasts"),
        ("GET", "/api/v1/workspace"),
    ]:
        response = await client.request(method, url, headers=headers, json={})
        assert_error(response, 401, "unauthorized", "token")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_is_accepted(client: httpx.AsyncClient, tenant) -> None:
    for role in Role:
        response = await client.get("/api/v1/channels", headers=tenant.auth(role))
        assert response.status_code == 200, (role, response.text)


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient, assert_error) -> None:
    assert_error(await client.get("/api/v1/nope"), 404, "not_found")
    assert_error(await client.get("/webhooks/nope"), 404, "not_found")


async def test_unknown_console_page_is_an_html_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.text


async def test_wrong_method_is_a_json_405(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.delete("/api/v1/channels", headers=tenant.auth())
    assert_error(response, 405, "method_not_allowed")


async def test_malformed_json_is_400_bad_json(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    for body in [b"{not json", b'{"channel_id": 1,', b"\xff\xfe{}"]:
        response = await client.post(
            "/api/v1/broadcasts",
            content=body,
            headers={**tenant.auth(), "Content-Type": "application/json"},
        )
        assert_error(response, 400, "bad_json", "JSON")


async def test_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    response = await client.post("/api/v1/topics", json=["sport"], headers=tenant.auth())
    assert_error(response, 422, "invalid", "body")


async def test_body_without_json_content_type_says_so(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    response = await client.post(
        "/api/v1/topics", content=b'{"key": "a", "name": "A"}', headers=tenant.auth()
    )
    assert_error(response, 422, "invalid", "Content-Type: application/json")


async def test_unknown_field_is_rejected(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.post(
        "/api/v1/topics", json={"key": "a", "name": "A", "colour": "red"}, headers=tenant.auth()
    )
    assert_error(response, 422, "invalid", "body.colour")


async def test_missing_field_is_named(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.post("/api/v1/topics", json={"key": "a"}, headers=tenant.auth())
    assert_error(response, 422, "invalid", "body.name: Field required")


async def test_bad_path_id_is_422(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.get("/api/v1/channels/abc", headers=tenant.auth())
    assert_error(response, 422, "invalid", "path.channel_id")
    response = await client.get(f"/api/v1/channels/{2**70}", headers=tenant.auth())
    assert_error(response, 422, "invalid", "path.channel_id")


async def test_too_large_body_is_413(client: httpx.AsyncClient, tenant, assert_error) -> None:
    response = await client.post(
        "/api/v1/topics",
        json={"key": "a", "name": "x" * (2 * 1024 * 1024)},
        headers=tenant.auth(),
    )
    assert_error(response, 413, "too_large", "bytes")


async def test_too_large_chunked_body_is_413(
    client: httpx.AsyncClient, tenant, assert_error
) -> None:
    async def chunks():
        yield b'{"key": "a", "name": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}'

    response = await client.post(
        "/api/v1/topics",
        content=chunks(),
        headers={**tenant.auth(), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large", "bytes")


async def test_unexpected_error_is_a_json_500_without_traceback(
    settings: Settings, runtime: Runtime, assert_error, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, runtime=runtime)

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom")
    message = assert_error(response, 500, "internal")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "logged" in message
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


async def test_openapi_lists_routes_and_error_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "Rundfunk"
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/channels", "post"),
        ("/api/v1/channels", "get"),
        ("/api/v1/channels/{channel_id}", "get"),
        ("/api/v1/topics", "post"),
        ("/api/v1/contacts", "get"),
        ("/api/v1/contacts/{contact_id}", "get"),
        ("/api/v1/broadcasts", "post"),
        ("/api/v1/broadcasts/{broadcast_id}", "get"),
        ("/api/v1/broadcasts/{broadcast_id}/send", "post"),
        ("/api/v1/broadcasts/{broadcast_id}/pause", "post"),
        ("/api/v1/broadcasts/{broadcast_id}/cancel", "post"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{conversation_id}", "get"),
        ("/api/v1/conversations/{conversation_id}/messages", "post"),
        ("/api/v1/conversations/{conversation_id}/notes", "post"),
        ("/api/v1/conversations/{conversation_id}/assign", "post"),
        ("/api/v1/conversations/{conversation_id}/resolve", "post"),
        ("/api/v1/conversations/{conversation_id}/reopen", "post"),
        ("/api/v1/members", "get"),
        ("/api/v1/workspace", "get"),
        ("/api/v1/workspace", "patch"),
        ("/sandbox/{channel_id}/phones/{address}/messages", "post"),
        ("/sandbox/{channel_id}/phones/{address}/messages", "get"),
        ("/healthz", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    error_ref = "#/components/schemas/ErrorResponse"
    create = paths["/api/v1/broadcasts"]["post"]
    for status in ("400", "401", "403", "404", "409", "422"):
        schema = create["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"] == error_ref, status
    assert create["security"] == [{"token": []}]
    sandbox = paths["/sandbox/{channel_id}/phones/{address}/messages"]["post"]
    assert "security" not in sandbox and "401" not in sandbox["responses"]
    send_at = spec["components"]["schemas"]["BroadcastCreate"]["properties"]["send_at"]
    assert any(option.get("format") == "date-time" for option in send_at["anyOf"])


async def test_lifespan_creates_and_closes_its_own_runtime(settings: Settings) -> None:
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        assert isinstance(runtime, Runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/api/v1/channels")).status_code == 401


async def test_lifespan_leaves_a_given_runtime_open(settings: Settings, runtime: Runtime) -> None:
    app = create_app(settings, runtime=runtime)
    async with app.router.lifespan_context(app):
        assert app.state.runtime is runtime
    async with runtime.db.read() as conn:  # still usable: the caller closes it
        assert conn is not None
