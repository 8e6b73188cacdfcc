"""``/docs``: the interactive API explorer (Swagger UI), served entirely by this server.

FastAPI's own page loads Swagger UI from a CDN, so it stays blank without internet
(an installation behind a firewall, a train) and lets a third party see who reads the
docs. Here the page, its start script (``static/api-docs.js``) and Swagger UI's
JavaScript and CSS (shipped in the ``fastapi-offline`` package, Apache-2.0 / MIT) all
come from this server, under a Content-Security-Policy that allows nothing else.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from rundfunk.web.assets import AssetFiles, asset_version
from rundfunk.web.ui.render import static_version

# Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css) as the package ships them.
SWAGGER_FILES = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)


def _page(title: str, openapi_url: str, version: str, static_version: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} API</title>
<link rel="icon" href="/static/favicon.svg?v={static_version}" type="image/svg+xml">
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css?v={version}">
<script src="{ASSETS_URL}/swagger-ui-bundle.js?v={version}" defer></script>
<script src="/static/api-docs.js?v={static_version}" defer></script>
</head>
<body>
<main id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></main>
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """``GET /docs`` and Swagger UI's files under ``/docs/assets`` (FastAPI's own
    ``docs_url`` must be off)."""
    version = asset_version(SWAGGER_FILES)
    html = _page(app.title, app.openapi_url or "/openapi.json", version, static_version())
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
                "Cache-Control": "no-cache",
            },
        )

    app.include_router(router)
    app.mount(ASSETS_URL, AssetFiles(directory=SWAGGER_FILES, version=version), name="docs-assets")
