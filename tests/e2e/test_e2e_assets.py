"""What the real server sends a browser besides pages: the API explorer without
internet, compressed and cached static files, the favicon, and the sandbox phones
closed to forwarded (proxied) clients."""

from __future__ import annotations

import re

import pytest
from e2e_server import Server

pytestmark = pytest.mark.e2e

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def test_docs_load_only_from_this_server(server: Server) -> None:
    assert server.client is not None
    page = server.client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp
    assets = ASSET.findall(page.text)
    assert any("swagger-ui-bundle.js" in a for a in assets), assets
    assert any("swagger-ui.css" in a for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset  # same origin
        loaded = server.client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 100, asset
    assert server.client.get("/openapi.json").status_code == 200
    assert server.client.get("/redoc").status_code == 404  # its CDN page is gone too


def test_static_files_are_compressed_and_cached(server: Server) -> None:
    assert server.client is not None
    login = server.client.get("/login").text
    css = next(a for a in ASSET.findall(login) if a.startswith("/static/app.css?v="))
    gzip = {"Accept-Encoding": "gzip"}
    versioned = server.client.get(css, headers=gzip)
    assert versioned.status_code == 200
    assert versioned.headers["content-encoding"] == "gzip"
    assert versioned.headers["vary"] == "Accept-Encoding"
    assert int(versioned.headers["content-length"]) < len(versioned.content) / 2
    assert "max-age=31536000" in versioned.headers["cache-control"]
    assert "body" in versioned.text  # httpx decompressed real CSS
    # Unversioned (or an old version): revalidated with the ETag, a 304 without a body.
    for url in ("/static/app.css", "/static/app.css?v=0.0.1-old"):
        plain = server.client.get(url, headers=gzip)
        assert plain.headers["cache-control"] == "no-cache"
        again = server.client.get(url, headers={**gzip, "If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    identity = server.client.get("/static/app.css", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in identity.headers
    assert identity.content == versioned.content


def test_favicon(server: Server) -> None:
    assert server.client is not None
    icon = server.client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg") and "max-age" in icon.headers["cache-control"]
    login = server.client.get("/login").text
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', login)
    assert link, login[:600]
    assert server.client.get(link.group(1)).content == icon.content


def test_sandbox_phones_refuse_a_proxied_client(server: Server) -> None:
    assert server.client is not None
    url = f"/sandbox/{server.channel_id}/phones/4917000000001/messages"
    assert server.client.get(url).status_code == 200  # this machine, directly
    proxied = server.client.get(url, headers={"X-Forwarded-For": "203.0.113.5"})
    assert proxied.status_code == 403
    assert "RUNDFUNK_SANDBOX_PUBLIC" in proxied.json()["error"]["message"]
