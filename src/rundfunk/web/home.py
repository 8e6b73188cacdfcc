"""The page at ``/``: what this server offers and where to go next (no data, no login)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from rundfunk import __version__

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rundfunk</title>
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem;
        color: #1d2330; }}
 code {{ background: #f1f3f7; padding: .1rem .3rem; border-radius: 4px; }}
 a {{ color: #1a56db; }}
</style></head>
<body>
<h1>Rundfunk <small>{version}</small></h1>
<p>Broadcast channels with a clear hierarchy, and private one-to-one conversations,
on messengers.</p>
<ul>
 <li><a href="/docs">Interactive API documentation</a>: authorize with the API token that
 the first start printed.</li>
 <li><a href="/openapi.json">OpenAPI description</a></li>
 {sandbox}
</ul>
</body></html>
"""

_SANDBOX = (
    "<li>Sandbox phones: <code>POST /sandbox/&lt;channel id&gt;/phones/&lt;number&gt;/messages"
    '</code> with <code>{"text": "START"}</code> subscribes a simulated phone; '
    "<code>GET</code> on the same path shows what it received.</li>"
)


def page(*, sandbox_enabled: bool) -> str:
    return _PAGE.format(version=escape(__version__), sandbox=_SANDBOX if sandbox_enabled else "")


def home_router(*, sandbox_enabled: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    html = page(sandbox_enabled=sandbox_enabled)

    @router.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return html

    return router
