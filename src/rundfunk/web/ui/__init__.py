"""The web console: server-rendered pages for editors, agents and admins.

``install_console`` adds the static files, every page router, the sign-in redirect
and the HTML error page to the app. Each area of the console is one module with its
routes (``broadcasts``, ``inbox``, …) and a folder of templates.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from rundfunk.web.assets import AssetFiles
from rundfunk.web.ui import (
    account,
    broadcasts,
    channels,
    contact_blocking,
    contacts,
    dashboard,
    dead_letters,
    inbox,
    settings,
    simulator,
    team,
    team_tokens,
    topics,
)
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import STATIC, page, redirect, static_version
from rundfunk.web.ui.session import LoginRequired, optional_member

_TITLES = {
    400: N_("The request is not valid"),
    401: N_("Please sign in"),
    403: N_("No access"),
    404: N_("Not found"),
    409: N_("Not possible right now"),
    413: N_("Too large"),
    422: N_("Please check your input"),
    429: N_("Too many attempts"),
    502: N_("The messenger platform did not answer as expected"),
}


async def error_page(request: Request, status: int, message: str) -> Response:
    member = getattr(request.state, "member", None)
    if member is None and hasattr(request.app.state, "runtime"):
        member = await optional_member(request, request.app.state.runtime.db)
    title = _TITLES.get(status, N_("Something went wrong"))
    return page(
        request,
        "error.html",
        member=member,
        status=status,
        title=title,
        message=message,
        back="/dashboard" if member else "/login",
    )


async def _favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the same SVG icon."""
    return FileResponse(
        STATIC / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


async def _on_login_required(request: Request, _exc: Exception) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", "text/html"):
        return redirect(request, f"/login?next={quote(request.url.path)}")
    return Response("sign in first", status_code=401, media_type="text/plain")


# Every area of the console; the simulator only while the sandbox is enabled.
AREAS = (
    *(account, dashboard, broadcasts, inbox, contacts, topics, channels, team, settings),
    dead_letters,
    team_tokens,
    contact_blocking,
)


def install_console(app: FastAPI) -> None:
    app.state.html_error_page = error_page
    app.add_exception_handler(LoginRequired, _on_login_required)
    # Compressed, cached for a year under the ?v= the templates put on each link.
    app.mount("/static", AssetFiles(directory=STATIC, version=static_version()), name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    for module in AREAS:
        app.include_router(module.router)
    if app.state.settings.sandbox_enabled:
        app.include_router(simulator.router)
