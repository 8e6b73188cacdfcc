"""Rendering console pages: one Jinja environment per language, the shared page
context, flash messages, and the security headers every page carries.

Templates live in ``templates/``; ``base.html`` draws the layout and the navigation
for the member's role, ``_forms.html`` the form fields with their error messages.
Times are shown in the workspace's time zone and the member's language.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from rundfunk.services.errors import Message, ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.assets import asset_version
from rundfunk.web.ui.i18n import LANGUAGES, translations
from rundfunk.web.ui.session import set_cookie

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
FLASH_COOKIE = "rf_flash"
# Scripts only from this server (no inline script); styles may be inline (progress bars).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def static_version() -> str:
    """The ``?v=`` of every static file's URL: changes with any file (web.assets)."""
    return asset_version(STATIC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@pass_context
def _when(context: Context, value: datetime | None, style: str = "short") -> str:
    """A moment in the workspace's time zone, written the member's way."""
    if value is None:
        return "–"
    return format_datetime(
        value, style, tzinfo=zone(context.get("timezone", "UTC")), locale=context.get("lang", "en")
    )


@pass_context
def _number(context: Context, value: float | int | None) -> str:
    return format_decimal(value or 0, locale=context.get("lang", "en"))


def translated(locale: str, value: object) -> object:
    """A service error's ``Message`` in ``locale`` (its template translated, its values
    put back in); anything else as it is. English when no translation exists."""
    if not isinstance(value, Message):
        return value
    text = translations(locale).gettext(value.template)
    if not value.params:
        return text
    try:
        return text % value.params
    except (KeyError, TypeError, ValueError):  # a translation that lost a placeholder
        return str(value)


def _in_language(locale: str) -> Callable[[object], object]:
    return lambda value: translated(locale, value)


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        # A service's error shown anywhere on a page comes out in the page's language.
        finalize=_in_language(locale),
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.filters["number"] = _number
    env.globals["version"] = static_version()  # on every /static link: ?v=…
    env.globals["languages"] = LANGUAGES
    return env


def page(
    request: Request,
    template: str,
    *,
    member: SessionMember | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A whole page (or a fragment: any template not extending ``base.html``)."""
    lang = member.locale if member else _browser_language(request)
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:300]
    values = {
        "request": request,
        "member": member,
        "csrf_token": member.csrf_token if member else context.pop("form_token", ""),
        "lang": lang,
        "timezone": member.timezone if member else "UTC",
        "path": request.url.path,
        "flash": flash,
        "sandbox_enabled": request.app.state.settings.sandbox_enabled,
        **context,
    }
    html = environment(lang).get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=_HEADERS)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, url: str, *, flash: str = "") -> RedirectResponse:
    """See-other to ``url``; ``flash`` (an ``N_`` message) is shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_cookie(response, request, FLASH_COOKIE, quote(flash), max_age=60)
    return response


def _browser_language(request: Request) -> str:
    accepted = request.headers.get("accept-language", "").lower()
    return "de" if accepted.startswith("de") else "en"


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Only same-site paths may follow a sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def errors_of(exc: ServiceError) -> dict[str, str]:
    """A service's refusal as form errors: next to its field, or above the form."""
    return {exc.field or "_": exc.message}
