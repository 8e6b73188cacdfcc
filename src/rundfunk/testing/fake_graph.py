"""A fake WhatsApp Cloud API (Graph API) server on loopback, for tests and benchmarks.

Speaks the documented wire format (Meta's Cloud API reference, as summarised in
the design note CHANNELS.md): sends with the real validation rules and error
shapes, media upload, the template list with cursor paging, the business profile
and the phone number node. Accepted messages are recorded in ``FakeGraph.sent``
and answered, like Meta does, by signed status webhooks that are batched, may be
duplicated, shuffled or skip ``delivered``, and are retried with backoff when the
receiver does not answer 2xx.

Faults are plain attributes, settable at any time: ``latency``, injected Graph
errors (``inject``), dropped connections (``network_error_share``), a real
throughput limiter (``throughput_limit``), a pair rate limit, undeliverable users.
Simulated users write in (``user_writes``), which opens their 24-hour window.

In-process::

    graph = FakeGraph(access_token="tok", app_secret="secret", seed=1)
    base_url = await graph.start()
    graph.webhook_url = "http://127.0.0.1:8000/webhooks/whatsapp/3"
    ...
    await graph.drain()
    await graph.close()

As a process (prints ``FAKE_GRAPH_URL=...``, driven through ``/_fake/*``)::

    python -m rundfunk.testing.fake_graph --port 0 --access-token tok --app-secret secret
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Default titles, used as "(#code) title" in error answers and status errors.
ERROR_TITLES: dict[int, str] = {
    1: "An unknown error has occurred",
    2: "Service temporarily unavailable",
    4: "Application request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    368: "Temporarily blocked for policies violations",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131016: "Service unavailable",
    131026: "Message undeliverable",
    131031: "Business Account locked",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement",
    131050: "Unable to deliver the message: the recipient stopped marketing messages",
    131051: "Unsupported message type",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132012: "Parameter format does not match format in the created template",
    132015: "Template is Paused",
    132016: "Template is Disabled",
}

MESSAGE_TYPES = frozenset(
    {"text", "image", "video", "audio", "document", "sticker"}
    | {"interactive", "template", "location", "contacts", "reaction"}
)
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})

_MB = 1024 * 1024
# Upload limits by MIME type: (media kind, bytes). Documents: the documented list.
MEDIA_LIMITS: dict[str, tuple[str, int]] = {
    "image/jpeg": ("image", 5 * _MB),
    "image/png": ("image", 5 * _MB),
    "video/mp4": ("video", 16 * _MB),
    "video/3gpp": ("video", 16 * _MB),
    "audio/aac": ("audio", 16 * _MB),
    "audio/mp4": ("audio", 16 * _MB),
    "audio/mpeg": ("audio", 16 * _MB),
    "audio/amr": ("audio", 16 * _MB),
    "audio/ogg": ("audio", 16 * _MB),
    "image/webp": ("sticker", 500 * 1024),
    "text/plain": ("document", 100 * _MB),
    "application/pdf": ("document", 100 * _MB),
    "application/msword": ("document", 100 * _MB),
    "application/vnd.ms-excel": ("document", 100 * _MB),
    "application/vnd.ms-powerpoint": ("document", 100 * _MB),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        "document",
        100 * _MB,
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", 100 * _MB),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "document",
        100 * _MB,
    ),
}

VERTICALS = frozenset(
    [
        "UNDEFINED",
        "OTHER",
        "AUTO",
        "BEAUTY",
        "APPAREL",
        "EDU",
        "ENTERTAIN",
        "EVENT_PLAN",
        "FINANCE",
        "GROCERY",
        "GOVT",
        "HOTEL",
        "HEALTH",
        "NONPROFIT",
        "PROF_SERVICES",
        "RETAIL",
        "TRAVEL",
        "RESTAURANT",
        "NOT_A_BIZ",
    ]
)
# Meta's reference says 512 for description; older pages (and our notes) say 256.
# The fake accepts the larger documented limit so it never rejects a valid profile.
PROFILE_LIMITS = {"about": 139, "address": 256, "description": 512, "email": 128}

WINDOW_SECONDS = 24 * 3600
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
UNKNOWN_NODE = (
    "Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded "
    "due to missing permissions, or does not support this operation"
)


class GraphError(Exception):
    """One Graph API error answer: ``error.code``, its details and the HTTP status."""

    def __init__(
        self,
        code: int,
        details: str = "",
        *,
        message: str | None = None,
        http_status: int = 400,
        error_type: str = "OAuthException",
    ) -> None:
        self.code = code
        self.details = details
        self.message = message or f"(#{code}) {ERROR_TITLES.get(code, 'Unknown error')}"
        self.http_status = http_status
        self.error_type = error_type
        super().__init__(self.message)

    def body(self) -> JSON:
        error: JSON = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.details:  # absent on token errors (190) and unknown nodes, like Graph's
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}


@dataclass(frozen=True)
class SentMessage:
    """One accepted send: the wamid we answered, the recipient's wa_id, the raw payload."""

    wamid: str
    to: str
    payload: JSON
    at: float
    callback_data: str | None

    @property
    def type(self) -> str:
        return str(self.payload.get("type", "text"))


@dataclass(frozen=True)
class Injection:
    """Answer ``share`` of the send requests with Graph error ``code``."""

    code: int
    share: float
    http_status: int = 400
    message: str | None = None


# --- request validation: pure functions raising GraphError -----------------------------


def _bad(details: str) -> GraphError:
    return GraphError(100, details)


def _obj(value: object, where: str) -> JSON:
    if not isinstance(value, dict):
        raise _bad(f"Param {where} must be a JSON object")
    return value


def _str(value: object, where: str, *, max_len: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"Param {where} is required and must be a non-empty string")
    if len(value) > max_len:
        raise _bad(f"Param {where} must be at most {max_len} characters long")
    return value


def _list(value: object, where: str, *, low: int, high: int) -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise _bad(f"Param {where} must be a list of {low} to {high} items")
    return value


def _wa_id(to: object) -> str:
    digits = to[1:] if isinstance(to, str) and to.startswith("+") else to
    if not isinstance(digits, str) or not digits.isdigit() or not 5 <= len(digits) <= 20:
        raise _bad("Param to must be a phone number: digits with an optional leading '+'")
    return digits


def _check_media_ref(obj: JSON, where: str, media_ids: Container[str]) -> None:
    has_link, has_id = "link" in obj, "id" in obj
    if has_link == has_id:
        raise _bad(f"Param {where} needs exactly one of 'link' or 'id'")
    if has_link:
        link = obj["link"]
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise _bad(f"Param {where}['link'] must be an http(s) URL")
    elif obj["id"] not in media_ids:
        raise _bad(f"Param {where}['id'] is not a valid media id")


def _check_media(kind: str, obj: JSON, media: dict[str, bytes]) -> None:
    _check_media_ref(obj, kind, media)
    if "caption" in obj:
        if kind in ("audio", "sticker"):
            raise _bad(f"Param {kind}['caption'] is not allowed for {kind} messages")
        _str(obj["caption"], f"{kind}['caption']", max_len=1024)
    if "filename" in obj:
        if kind != "document":
            raise _bad(f"Param {kind}['filename'] is only allowed for documents")
        _str(obj["filename"], "document['filename']", max_len=240)


def _check_text(obj: JSON) -> None:
    _str(obj.get("body"), "text['body']", max_len=4096)
    if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
        raise _bad("Param text['preview_url'] must be a boolean")


def _check_interactive(obj: JSON) -> None:
    kind = obj.get("type")
    action = _obj(obj.get("action"), "interactive['action']")
    body = _obj(obj.get("body"), "interactive['body']")
    _str(
        body.get("text"), "interactive['body']['text']", max_len=1024 if kind == "button" else 4096
    )
    if "footer" in obj:
        footer = _obj(obj["footer"], "interactive['footer']")
        _str(footer.get("text"), "interactive['footer']['text']", max_len=60)
    if kind == "button":
        buttons = _list(action.get("buttons"), "interactive['action']['buttons']", low=1, high=3)
        ids, titles = set(), set()
        for i, raw in enumerate(buttons):
            where = f"interactive['action']['buttons'][{i}]"
            button = _obj(raw, where)
            if button.get("type") != "reply":
                raise _bad(f"Param {where}['type'] must be 'reply'")
            reply = _obj(button.get("reply"), f"{where}['reply']")
            ids.add(_str(reply.get("id"), f"{where}['reply']['id']", max_len=256))
            titles.add(_str(reply.get("title"), f"{where}['reply']['title']", max_len=20))
        if len(ids) != len(buttons) or len(titles) != len(buttons):
            raise _bad("Buttons must have unique ids and unique titles")
    elif kind == "list":
        _str(action.get("button"), "interactive['action']['button']", max_len=20)
        sections = _list(
            action.get("sections"), "interactive['action']['sections']", low=1, high=10
        )
        row_ids: list[str | None] = []
        for i, raw in enumerate(sections):
            where = f"interactive['action']['sections'][{i}]"
            section = _obj(raw, where)
            _str(section.get("title"), f"{where}['title']", max_len=24, required=len(sections) > 1)
            for j, raw_row in enumerate(
                _list(section.get("rows"), f"{where}['rows']", low=1, high=10)
            ):
                row = _obj(raw_row, f"{where}['rows'][{j}]")
                row_ids.append(_str(row.get("id"), f"{where}['rows'][{j}]['id']", max_len=200))
                _str(row.get("title"), f"{where}['rows'][{j}]['title']", max_len=24)
                desc = row.get("description")
                _str(desc, f"{where}['rows'][{j}]['description']", max_len=72, required=False)
        if len(row_ids) > 10:
            raise _bad("A list message may hold at most 10 rows in total")
        if len(set(row_ids)) != len(row_ids):
            raise _bad("Row ids must be unique")
    elif kind == "cta_url":
        params = _obj(action.get("parameters"), "interactive['action']['parameters']")
        _str(params.get("display_text"), "display_text", max_len=20)
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad("Param interactive['action']['parameters']['url'] must be an http(s) URL")
    else:
        raise _bad("Param interactive['type'] must be one of button, list, cta_url (fake)")


def _check_location(obj: JSON) -> None:
    for key in ("latitude", "longitude"):
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _bad(f"Param location['{key}'] is required and must be a number")


def _check_contacts(value: object) -> None:
    for i, raw in enumerate(_list(value, "contacts", low=1, high=257)):
        name = _obj(_obj(raw, f"contacts[{i}]").get("name"), f"contacts[{i}]['name']")
        _str(name.get("formatted_name"), f"contacts[{i}]['name']['formatted_name']", max_len=512)


def _check_reaction(obj: JSON) -> None:
    _str(obj.get("message_id"), "reaction['message_id']", max_len=512)
    if not isinstance(obj.get("emoji"), str):
        raise _bad("Param reaction['emoji'] must be a string (empty removes the reaction)")


def _check_text_param(param: JSON, where: str) -> None:
    text = param.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad(f"Param {where}['text'] must be a non-empty string")
    if "\n" in text or "\t" in text or "     " in text:
        raise _bad(
            f"Param {where}['text'] cannot have new-line/tab characters "
            "or more than 4 consecutive spaces"
        )


def _placeholders(text: object) -> int:
    return len(set(PLACEHOLDER.findall(text))) if isinstance(text, str) else 0


def _mismatch(part: str, given: int, expected: int) -> GraphError:
    return GraphError(
        132000,
        f"{part}: number of localizable_params ({given}) does not match "
        f"the expected number of params ({expected})",
    )


def _check_template_params(request: JSON, template: JSON, media: dict[str, bytes]) -> None:
    """Components of the send vs the approved template: counts, types, button indexes."""
    parts = {str(c.get("type", "")).upper(): c for c in template.get("components", [])}
    given: dict[str, list[JSON]] = {}
    buttons_given: dict[int, tuple[str, list[JSON]]] = {}
    raw = request.get("components", [])
    for i, raw_component in enumerate(_list(raw, "template['components']", low=0, high=20)):
        where = f"template['components'][{i}]"
        component = _obj(raw_component, where)
        kind = component.get("type")
        params = [
            _obj(p, f"{where}['parameters'][{j}]")
            for j, p in enumerate(
                _list(component.get("parameters", []), f"{where}['parameters']", low=0, high=100)
            )
        ]
        for j, param in enumerate(params):
            if param.get("type") == "text":
                _check_text_param(param, f"{where}['parameters'][{j}]")
        if kind in ("header", "body"):
            if kind in given:
                raise _bad(f"Component {kind} given twice")
            given[kind] = params
        elif kind == "button":
            index = component.get("index")
            if not str(index).isdigit():
                raise _bad(f"Param {where}['index'] must be a button index")
            sub_type = component.get("sub_type")
            if not isinstance(sub_type, str):
                raise _bad(f"Param {where}['sub_type'] is required")
            buttons_given[int(str(index))] = (sub_type, params)
        else:
            raise _bad(f"Param {where}['type'] must be header, body or button")

    body_params = given.get("body", [])
    expected = _placeholders(parts.get("BODY", {}).get("text"))
    if len(body_params) != expected:
        raise _mismatch("body", len(body_params), expected)
    for param in body_params:
        if param.get("type") not in ("text", "currency", "date_time"):
            raise GraphError(132012, "body parameters must be text, currency or date_time")

    header = parts.get("HEADER")
    header_params = given.get("header", [])
    header_format = str(header.get("format", "TEXT")).upper() if header else None
    if header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        if len(header_params) != 1:
            raise _mismatch("header", len(header_params), 1)
        kind = header_format.lower()
        if header_params[0].get("type") != kind:
            raise GraphError(132012, f"header needs a parameter of type {kind}")
        _check_media_ref(_obj(header_params[0].get(kind), f"header {kind}"), kind, media)
    else:
        expected = _placeholders(header.get("text")) if header else 0
        if len(header_params) != expected:
            raise _mismatch("header", len(header_params), expected)
        if any(p.get("type") != "text" for p in header_params):
            raise GraphError(132012, "text header parameters must be of type text")

    buttons: list[JSON] = list(parts.get("BUTTONS", {}).get("buttons", []))
    for index, (sub_type, params) in buttons_given.items():
        if index >= len(buttons):
            raise _mismatch(f"button at index {index}", len(params), 0)
        wanted = str(buttons[index].get("type", "")).lower()
        if sub_type != wanted:
            raise _bad(f"button at index {index} is {wanted}, not {sub_type}")
    for index, button in enumerate(buttons):
        if str(button.get("type")).upper() == "URL" and _placeholders(button.get("url")):
            _sub, params = buttons_given.get(index, ("url", []))
            if len(params) != 1 or params[0].get("type") != "text":
                raise _mismatch(f"button at index {index}", len(params), 1)
        elif index in buttons_given and str(button.get("type")).upper() == "URL":
            raise _mismatch(f"button at index {index}", len(buttons_given[index][1]), 0)


def _template_example(text: str) -> list[str]:
    return [f"Beispiel {n}" for n in sorted(set(PLACEHOLDER.findall(text)), key=int)]


# --- knob parsing for the control endpoint ---------------------------------------------


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _as_opt_float(value: Any) -> float | None:
    return None if value is None else _as_float(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _as_opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or null, got {value!r}")
    return value


def _as_str_set(value: Any) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of wa_ids")
    return set(value)


KNOBS: dict[str, Callable[[Any], Any]] = {
    "latency": _as_float,
    "enforce_window": _as_bool,
    "network_error_share": _as_float,
    "network_error_accepts": _as_bool,
    "throughput_limit": _as_opt_float,
    "pair_limit_seconds": _as_opt_float,
    "undeliverable": _as_str_set,
    "read_share": _as_float,
    "status_delay": _as_float,
    "duplicate_share": _as_float,
    "shuffle": _as_bool,
    "skip_delivered_share": _as_float,
    "late_delivered_after_failed": _as_bool,
    "multi_change_share": _as_float,
    "webhook_url": _as_opt_str,
    "webhook_batch_seconds": _as_float,
    "webhook_batch_max": _as_int,
    "webhook_retries": _as_int,
    "webhook_concurrency": _as_int,
}


class FakeGraph:
    """The fake Graph API: state, knobs, HTTP handlers and the webhook sender.

    State: ``sent``, ``templates`` (Graph shape), ``media``/``media_types``, ``profile``,
    ``windows`` (wa_id -> last user message, Unix seconds), ``requests`` (by endpoint),
    ``webhook_posts``/``webhook_failures``/``webhook_dropped``/``webhook_responses``,
    ``statuses_emitted``. Knobs: the names in ``KNOBS`` plus ``injections``.
    """

    def __init__(
        self,
        *,
        access_token: str = "tok",
        app_secret: str = "secret",
        phone_number_id: str = "1001",
        waba_id: str = "2002",
        display_phone_number: str = "+49 151 23456789",
        verified_name: str = "Rundfunk Test",
        api_version: str = "v21.0",
        seed: int | None = None,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self.display_phone_number = display_phone_number
        self.verified_name = verified_name
        self.api_version = api_version
        self.rng = random.Random(seed)
        self.base_url: str | None = None
        self.webhook_url: str | None = None

        # Knobs (see module docstring); settable at any time.
        self.latency = 0.0
        self.enforce_window = True
        self.network_error_share = 0.0
        self.network_error_accepts = False
        self.throughput_limit: float | None = None
        self.pair_limit_seconds: float | None = None
        self.undeliverable: set[str] = set()
        self.read_share = 0.5
        self.status_delay = 0.01
        self.duplicate_share = 0.0
        self.shuffle = False
        self.skip_delivered_share = 0.0
        self.late_delivered_after_failed = False
        self.multi_change_share = 0.25
        self.webhook_batch_seconds = 0.02
        self.webhook_batch_max = 100
        self.webhook_retries = 5
        self.webhook_concurrency = 16
        self.injections: list[Injection] = []

        # State.
        self.templates: list[JSON] = []
        self.profile: JSON = {
            "about": "Rundfunk",
            "address": "",
            "description": "",
            "email": "",
            "profile_picture_url": "",
            "websites": [],
            "vertical": "UNDEFINED",
        }
        self._token = secrets.token_hex(4)  # keeps wamids unique across fakes
        self._ids = 0
        self.runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: tuple[int, asyncio.Semaphore] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False
        self._reset_traffic()

    def _reset_traffic(self) -> None:
        self.sent: list[SentMessage] = []
        self.media: dict[str, bytes] = {}
        self.media_types: dict[str, str] = {}
        self.windows: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.webhook_posts = 0
        self.webhook_failures = 0
        self.webhook_dropped = 0
        self.statuses_emitted = 0
        self.webhook_responses: deque[int] = deque(maxlen=1000)
        self._pending: list[JSON] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tat = 0.0
        self._last_to: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); returns the base URL."""
        # Documents may be 100 MB; aiohttp's default body limit is 1 MB.
        app = web.Application(client_max_size=110 * _MB)
        app.router.add_get("/_fake/sent", self._fake_sent)
        app.router.add_get("/_fake/stats", self._fake_stats)
        app.router.add_get("/_fake/config", self._fake_config)
        app.router.add_post("/_fake/config", self._fake_config)
        app.router.add_post("/_fake/templates", self._fake_add_template)
        app.router.add_post("/_fake/templates/status", self._fake_template_status)
        app.router.add_post("/_fake/users/{wa_id}/messages", self._fake_user_writes)
        app.router.add_post("/_fake/users/{wa_id}/preferences", self._fake_user_preferences)
        app.router.add_post("/_fake/drain", self._fake_drain)
        app.router.add_post("/_fake/reset", self._fake_reset)
        app.router.add_get("/media/{media_id}", self._download_media)
        version = r"{version:v\d+\.\d+}"
        app.router.add_route("*", f"/{version}/{{node}}", self._graph_request)
        app.router.add_route("*", f"/{version}/{{node}}/{{edge}}", self._graph_request)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        bound_port = self.runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        self._closed = False
        return self.base_url

    async def close(self) -> None:
        """Stop the server, cancel pending webhooks, close the webhook session."""
        self._closed = True
        self._cancel_pending()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _cancel_pending(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._pending.clear()

    def reset(self, *, templates: bool = False) -> None:
        """Forget traffic (sent, media, windows, counters, pending webhooks); knobs stay."""
        self._cancel_pending()
        self._reset_traffic()
        if templates:
            self.templates.clear()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until no status is scheduled and no webhook is pending or being retried."""
        deadline = time.monotonic() + timeout
        while self._timers or self._pending or self._flush_handle or self._tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhooks still pending after {timeout} s")
            await asyncio.sleep(0.005)

    # --- knobs and helpers -------------------------------------------------------------

    def inject(
        self, code: int, share: float, *, http_status: int = 400, message: str | None = None
    ) -> None:
        """Answer ``share`` of sends with error ``code``; rules add up, checked in order."""
        self.injections.append(Injection(code, share, http_status, message))

    def clear_injections(self) -> None:
        self.injections.clear()

    def configure(self, **knobs: Any) -> None:
        """Set knobs by name, type-checked (used by ``POST /_fake/config``)."""
        for name, value in knobs.items():
            if name == "injections":
                if not isinstance(value, list):
                    raise ValueError("injections must be a list")
                self.injections = [
                    Injection(
                        _as_int(rule["code"]),
                        _as_float(rule["share"]),
                        _as_int(rule.get("http_status", 400)),
                        _as_opt_str(rule.get("message")),
                    )
                    for rule in value
                ]
            elif name in KNOBS:
                setattr(self, name, KNOBS[name](value))
            else:
                raise ValueError(f"unknown knob {name!r}")

    def config(self) -> JSON:
        knobs = {name: getattr(self, name) for name in KNOBS}
        knobs["undeliverable"] = sorted(self.undeliverable)
        knobs["injections"] = [vars(rule) for rule in self.injections]
        return knobs

    def open_window(self, wa_id: str, *, at: float | None = None) -> None:
        """Record that the user wrote at ``at`` (now): opens their 24-hour window."""
        self.windows[wa_id.lstrip("+")] = time.time() if at is None else at

    def close_window(self, wa_id: str) -> None:
        self.windows.pop(wa_id.lstrip("+"), None)

    def in_window(self, wa_id: str) -> bool:
        last = self.windows.get(wa_id.lstrip("+"))
        return last is not None and time.time() - last < WINDOW_SECONDS

    def received(self, wa_id: str) -> list[SentMessage]:
        wa_id = wa_id.lstrip("+")
        return [m for m in self.sent if m.to == wa_id]

    def count_by_recipient(self) -> Counter[str]:
        return Counter(m.to for m in self.sent)

    def add_template(
        self,
        name: str,
        language: str = "de",
        category: str = "MARKETING",
        status: str = "APPROVED",
        body: str = "Hallo {{1}}, hier sind die Neuigkeiten.",
        header: str | None = None,
        header_format: str | None = None,
        buttons: list[JSON] | None = None,
    ) -> JSON:
        """Add a template in the Graph shape. ``header_format`` IMAGE/VIDEO/DOCUMENT: media header.

        ``buttons`` in the Graph shape, e.g. ``{"type": "URL", "text": "Mehr",
        "url": "https://example.org/{{1}}"}`` or ``{"type": "QUICK_REPLY", "text": "Stopp"}``.
        """
        if self.find_template(name, language) is not None:
            raise ValueError(f"template {name!r} already exists in {language!r}")
        components: list[JSON] = []
        fmt = (header_format or ("TEXT" if header is not None else "")).upper()
        if fmt == "TEXT":
            head: JSON = {"type": "HEADER", "format": "TEXT", "text": header or ""}
            if _placeholders(header):
                head["example"] = {"header_text": _template_example(header or "")}
            components.append(head)
        elif fmt:
            components.append({"type": "HEADER", "format": fmt})
        main: JSON = {"type": "BODY", "text": body}
        if _placeholders(body):
            main["example"] = {"body_text": [_template_example(body)]}
        components.append(main)
        if buttons:
            components.append({"type": "BUTTONS", "buttons": [dict(b) for b in buttons]})
        template: JSON = {
            "name": name,
            "language": language,
            "status": status.upper(),
            "category": category.upper(),
            "id": self._next_id("1"),
            "parameter_format": "POSITIONAL",
            "components": components,
        }
        self.templates.append(template)
        return template

    def find_template(self, name: str, language: str) -> JSON | None:
        for template in self.templates:
            if template.get("name") == name and template.get("language") == language:
                return template
        return None

    def set_template_status(
        self, name: str, language: str, status: str, *, reason: str = "NONE"
    ) -> JSON:
        """Change a template's status; webhooks ``message_template_status_update`` if set."""
        template = self.find_template(name, language)
        if template is None:
            raise KeyError(f"no template {name!r} in {language!r}")
        template["status"] = status.upper()
        if self.webhook_url is not None:
            value = {
                "event": status.upper(),
                "message_template_id": int(tid) if (tid := str(template["id"])).isdigit() else tid,
                "message_template_name": name,
                "message_template_language": language,
                "reason": reason,
            }
            entry = {
                "id": self.waba_id,
                "time": int(time.time()),
                "changes": [{"field": "message_template_status_update", "value": value}],
            }
            body = self._encode({"object": "whatsapp_business_account", "entry": [entry]})
            self._spawn(self._deliver(body))
        return template

    # --- simulated users ---------------------------------------------------------------

    async def user_writes(
        self, wa_id: str, text: str = "START", *, name: str = "Anna", message: JSON | None = None
    ) -> str:
        """The user sends a message: opens their window, webhooks it at once; returns its id."""
        wa_id = wa_id.lstrip("+")
        now = time.time()
        msg: JSON = (
            dict(message) if message is not None else {"type": "text", "text": {"body": text}}
        )
        msg.setdefault("from", wa_id)
        msg.setdefault("id", self._wamid())
        msg.setdefault("timestamp", str(int(now)))
        self.open_window(wa_id, at=now)
        value: JSON = {
            **self._value_head(),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [msg],
        }
        if self.webhook_url is not None:
            await self._deliver(self._encode(self._envelope([value])))
        return str(msg["id"])

    async def user_preferences(
        self, wa_id: str, value: str = "stop", *, name: str = "Anna"
    ) -> None:
        """The user stops or resumes marketing messages in the WhatsApp app."""
        if value not in ("stop", "resume"):
            raise ValueError("value must be 'stop' or 'resume'")
        wa_id = wa_id.lstrip("+")
        preference = {
            "wa_id": wa_id,
            "detail": f"User requested to {value} marketing messages",
            "category": "marketing_messages",
            "value": value,
            "timestamp": int(time.time()),
        }
        change_value = {
            **self._value_head(),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "user_preferences": [preference],
        }
        if self.webhook_url is not None:
            envelope = self._envelope([change_value], field="user_preferences")
            await self._deliver(self._encode(envelope))

    async def post_webhook(
        self, envelope: JSON, *, sign: bool = True, secret: str | None = None
    ) -> int:
        """One raw POST of ``envelope`` (no retry); returns the HTTP status (0: no answer)."""
        if self.webhook_url is None:
            raise RuntimeError("webhook_url is not set")
        body = self._encode(envelope)
        return await self._post(self.webhook_url, body, sign=sign, secret=secret)

    # --- Graph endpoints ---------------------------------------------------------------

    def _route(self, method: str, node: str, edge: str | None) -> tuple[str, Handler | None]:
        if node == self.phone_number_id:
            table: dict[tuple[str, str | None], tuple[str, Handler]] = {
                ("GET", None): ("phone_number", self._phone_number),
                ("POST", "messages"): ("messages", self._send),
                ("POST", "media"): ("media_upload", self._upload_media),
                ("GET", "whatsapp_business_profile"): ("business_profile_get", self._get_profile),
                ("POST", "whatsapp_business_profile"): (
                    "business_profile_update",
                    self._post_profile,
                ),
            }
            found = table.get((method, edge))
        elif node == self.waba_id and method == "GET" and edge == "message_templates":
            found = ("message_templates", self._list_templates)
        elif node in self.media and method == "GET" and edge is None:
            found = ("media_info", self._media_info)
        else:
            found = None
        return found if found is not None else ("unsupported", None)

    async def _graph_request(self, request: web.Request) -> web.StreamResponse:
        node, edge = request.match_info["node"], request.match_info.get("edge")
        endpoint, handler = self._route(request.method, node, edge)
        self.requests[endpoint] += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        try:
            self._check_token(request)
            if handler is None:
                raise GraphError(
                    100,
                    message=UNKNOWN_NODE.format(method=request.method.lower(), node=node),
                    error_type="GraphMethodException",
                )
            return await handler(request)
        except GraphError as exc:
            return web.json_response(exc.body(), status=exc.http_status)

    def _check_token(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else request.query.get("access_token")
        if token is None or not hmac.compare_digest(token, self.access_token):
            raise GraphError(190, http_status=401)

    async def _json(self, request: web.Request) -> JSON:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            raise _bad(f"Request body is not valid JSON: {exc}") from exc
        return _obj(body, "body")

    async def _send(self, request: web.Request) -> web.StreamResponse:
        drop = self.network_error_share > 0 and self.rng.random() < self.network_error_share
        if drop and not self.network_error_accepts:
            return self._drop(request)
        try:
            answer = self._accept(await self._json(request))
        except GraphError:
            if drop:
                return self._drop(request)
            raise
        if drop:  # accepted, statuses on their way, but the answer is lost
            return self._drop(request)
        return web.json_response(answer)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Closing the socket before any byte of the answer: the client sees
        # ServerDisconnectedError; aiohttp's write of the response then fails quietly.
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    def _accept(self, payload: JSON) -> JSON:
        """Validate one send like the Cloud API, apply the knobs, record it; the 200 body."""
        if payload.get("messaging_product") != "whatsapp":
            raise _bad("Param messaging_product must be 'whatsapp'")
        if payload.get("recipient_type", "individual") != "individual":
            raise _bad("Param recipient_type must be 'individual'")
        wa_id = _wa_id(payload.get("to"))
        kind = payload.get("type", "text")
        if kind not in MESSAGE_TYPES:
            raise GraphError(131051, f"Message type {kind!r} is not supported")
        obj = _obj(payload.get(kind) if kind != "contacts" else {}, kind)
        callback = _str(
            payload.get("biz_opaque_callback_data"),
            "biz_opaque_callback_data",
            max_len=512,
            required=False,
        )
        if "context" in payload:
            _str(_obj(payload["context"], "context").get("message_id"), "context", max_len=512)
        category = "service"
        if kind == "text":
            _check_text(obj)
        elif kind in MEDIA_TYPES:
            _check_media(kind, obj, self.media)
        elif kind == "interactive":
            _check_interactive(obj)
        elif kind == "location":
            _check_location(obj)
        elif kind == "contacts":
            _check_contacts(payload.get("contacts"))
        elif kind == "reaction":
            _check_reaction(obj)
        else:
            category = self._check_template(obj)
        if kind != "template" and self.enforce_window and not self.in_window(wa_id):
            raise GraphError(
                131047,
                "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number.",
            )
        self._apply_faults(wa_id)
        message = SentMessage(self._wamid(), wa_id, payload, time.time(), callback)
        self.sent.append(message)
        if self.webhook_url is not None:
            self._schedule_statuses(message, category)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": wa_id}],
            "messages": [{"id": message.wamid, "message_status": "accepted"}],
        }

    def _check_template(self, obj: JSON) -> str:
        name = _str(obj.get("name"), "template['name']", max_len=512)
        code = _str(
            _obj(obj.get("language"), "template['language']").get("code"), "code", max_len=16
        )
        template = self.find_template(str(name), str(code))
        status = template.get("status") if template else None
        if template is None or status not in ("APPROVED", "PAUSED", "DISABLED"):
            raise GraphError(132001, f"template name ({name}) does not exist in {code}")
        if status == "PAUSED":
            raise GraphError(132015, f"Template {name} is paused due to low quality")
        if status == "DISABLED":
            raise GraphError(132016, f"Template {name} has been disabled")
        _check_template_params(obj, template, self.media)
        return str(template.get("category", "MARKETING")).lower()

    def _apply_faults(self, wa_id: str) -> None:
        """Injected errors, then the pair limit, then the throughput limiter."""
        roll, threshold = self.rng.random(), 0.0
        for rule in self.injections:
            threshold += rule.share
            if roll < threshold:
                raise GraphError(
                    rule.code,
                    ERROR_TITLES.get(rule.code, "Injected error"),
                    message=rule.message,
                    http_status=rule.http_status,
                )
        now = time.monotonic()
        if self.pair_limit_seconds is not None:
            last = self._last_to.get(wa_id)
            if last is not None and now - last < self.pair_limit_seconds:
                raise GraphError(
                    131056,
                    "Message failed to send because there were too many "
                    "messages sent from this phone number to the same phone number "
                    "in a short period of time.",
                )
        if self.throughput_limit is not None:
            # GCRA: a burst of one second's worth, then the steady rate. Only
            # accepted sends take a slot, so a client that backs off gets through.
            interval = 1.0 / self.throughput_limit
            tolerance = (max(1.0, self.throughput_limit) - 1.0) * interval
            tat = max(self._tat, now)
            if tat - now > tolerance + 1e-9:
                raise GraphError(130429, "Cloud API message throughput has been reached.")
            self._tat = tat + interval
        self._last_to[wa_id] = now

    async def _upload_media(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("messaging_product") != "whatsapp":
            raise _bad("Param messaging_product must be 'whatsapp'")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _bad("Param file must be a file")
        mime_raw = form.get("type") or upload.content_type
        mime = str(mime_raw).split(";")[0].strip().lower()
        if mime not in MEDIA_LIMITS:
            raise GraphError(
                131053, f"Param file must be a file with one of the supported types, not {mime}"
            )
        kind, limit = MEDIA_LIMITS[mime]
        data = upload.file.read()
        if len(data) > limit:
            raise GraphError(131053, f"{kind} files may be at most {limit} bytes, got {len(data)}")
        media_id = self._next_id("9")
        self.media[media_id] = data
        self.media_types[media_id] = mime
        return web.json_response({"id": media_id})

    async def _media_info(self, request: web.Request) -> web.StreamResponse:
        media_id = request.match_info["node"]
        data = self.media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base_url}/media/{media_id}",
                "mime_type": self.media_types[media_id],
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def _download_media(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_token(request)
        except GraphError as exc:
            return web.json_response(exc.body(), status=exc.http_status)
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return web.json_response({"error": "no such media"}, status=404)
        return web.Response(body=self.media[media_id], content_type=self.media_types[media_id])

    async def _list_templates(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            limit = int(query.get("limit", "25"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise _bad("Param limit must be an integer between 1 and 1000")
        rows = self.templates
        if "status" in query:
            wanted = {s.strip().upper() for s in query["status"].split(",")}
            rows = [t for t in rows if t.get("status") in wanted]
        if "name" in query:
            rows = [t for t in rows if query["name"] in str(t.get("name"))]
        start = 0
        if "after" in query:
            start = self._cursor_index(query["after"]) + 1
        elif "before" in query:
            start = max(0, self._cursor_index(query["before"]) - limit)
        page = rows[start : start + limit]
        if "fields" in query:
            fields = {f.strip() for f in query["fields"].split(",")} | {"id"}
            page = [{k: v for k, v in t.items() if k in fields} for t in page]
        if not page:
            return web.json_response({"data": []})
        before, after = self._cursor(start), self._cursor(start + len(page) - 1)
        paging: JSON = {"cursors": {"before": before, "after": after}}
        if start + len(page) < len(rows):
            paging["next"] = str(
                request.url.update_query({"after": after}).without_query_params("before")
            )
        if start > 0:
            paging["previous"] = str(
                request.url.update_query({"before": before}).without_query_params("after")
            )
        return web.json_response({"data": page, "paging": paging})

    @staticmethod
    def _cursor(index: int) -> str:
        return base64.urlsafe_b64encode(f"fake-cursor:{index}".encode()).decode()

    @staticmethod
    def _cursor_index(cursor: str) -> int:
        try:
            prefix, index = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
            if prefix != "fake-cursor":
                raise ValueError(prefix)
            return int(index)
        except ValueError as exc:
            raise _bad("Param after/before is not a valid cursor") from exc

    async def _get_profile(self, request: web.Request) -> web.StreamResponse:
        profile = {**self.profile, "messaging_product": "whatsapp"}
        if "fields" in request.query:
            fields = {f.strip() for f in request.query["fields"].split(",")}
            profile = {k: v for k, v in profile.items() if k in fields or k == "messaging_product"}
        return web.json_response({"data": [profile]})

    async def _post_profile(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if body.pop("messaging_product", None) != "whatsapp":
            raise _bad("Param messaging_product must be 'whatsapp'")
        update: JSON = {}
        for key, value in body.items():
            if key in PROFILE_LIMITS:
                if not isinstance(value, str) or len(value) > PROFILE_LIMITS[key]:
                    raise _bad(
                        f"Param {key} must be a string of at most {PROFILE_LIMITS[key]} chars"
                    )
                if key == "about" and not value:
                    raise _bad("Param about cannot be empty")
                if key == "email" and value and "@" not in value:
                    raise _bad("Param email must be a valid email address")
            elif key == "websites":
                if (
                    not isinstance(value, list)
                    or len(value) > 2
                    or not all(
                        isinstance(w, str)
                        and len(w) <= 256
                        and w.startswith(("http://", "https://"))
                        for w in value
                    )
                ):
                    raise _bad("Param websites must be at most 2 http(s) URLs of at most 256 chars")
            elif key == "vertical":
                if value != "" and value not in VERTICALS:
                    raise _bad(f"Param vertical must be one of {', '.join(sorted(VERTICALS))}")
            elif key == "profile_picture_handle":
                if not isinstance(value, str) or not value:
                    raise _bad("Param profile_picture_handle must be a non-empty string")
                key, value = "profile_picture_url", f"https://pps.example.invalid/{value}"
            else:
                raise _bad(f"Param {key} is not a business profile field")
            update[key] = value
        self.profile.update(update)
        return web.json_response({"success": True})

    async def _phone_number(self, request: web.Request) -> web.StreamResponse:
        node: JSON = {
            "id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "verified_name": self.verified_name,
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
        }
        if "fields" in request.query:
            fields = {f.strip() for f in request.query["fields"].split(",")} | {"id"}
            node = {k: v for k, v in node.items() if k in fields}
        return web.json_response(node)

    # --- status webhooks ---------------------------------------------------------------

    def _schedule_statuses(self, message: SentMessage, category: str) -> None:
        """Plan the message's statuses now (seeded), post them one ``status_delay`` apart."""
        wa_id, t0 = message.to, int(message.at)
        plan: list[JSON]
        if wa_id in self.undeliverable:
            failed = self._status(message, "failed", t0)
            failed["errors"] = [
                {
                    "code": 131026,
                    "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": {"details": "Message Undeliverable."},
                }
            ]
            plan = [failed]
            if self.late_delivered_after_failed:
                plan.append(self._status(message, "delivered", t0 + 1))
        else:
            conversation: JSON = {
                "id": hashlib.sha1(f"{wa_id}:{category}".encode()).hexdigest(),
                "origin": {"type": category},
            }
            billed: JSON = {
                "conversation": conversation,
                "pricing": {"billable": True, "pricing_model": "PMP", "category": category},
            }
            expires = str(t0 + WINDOW_SECONDS)
            sent = {
                **self._status(message, "sent", t0),
                **billed,
                "conversation": {**conversation, "expiration_timestamp": expires},
            }
            plan = [sent]
            read = self.rng.random() < self.read_share
            if not (read and self.rng.random() < self.skip_delivered_share):
                plan.append(self._status(message, "delivered", t0))
            if read:
                plan.append(self._status(message, "read", t0 + 1))
            plan[1] = {**plan[1], **billed}  # pricing rides on sent and the next one
        if self.shuffle:
            self.rng.shuffle(plan)
        plan += [dict(s) for s in plan if self.rng.random() < self.duplicate_share]
        loop = asyncio.get_running_loop()
        for step, status in enumerate(plan, start=1):
            self._later(loop, self.status_delay * step, status)

    def _later(self, loop: asyncio.AbstractEventLoop, delay: float, status: JSON) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self._enqueue(status)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    @staticmethod
    def _status(message: SentMessage, status: str, timestamp: int) -> JSON:
        obj: JSON = {
            "id": message.wamid,
            "status": status,
            "timestamp": str(timestamp),
            "recipient_id": message.to,
        }
        if message.callback_data is not None:
            obj["biz_opaque_callback_data"] = message.callback_data
        return obj

    def _enqueue(self, status: JSON) -> None:
        if self._closed:
            return
        self._pending.append(status)
        self.statuses_emitted += 1
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.webhook_batch_seconds, self._flush)

    def _flush(self) -> None:
        """Post what collected during one batch window, ``webhook_batch_max`` per POST."""
        self._flush_handle = None
        pending, self._pending = self._pending, []
        if self.webhook_url is None:
            return
        size = max(1, self.webhook_batch_max)
        for i in range(0, len(pending), size):
            body = self._encode(self._status_envelope(pending[i : i + size]))
            self._spawn(self._deliver(body))

    def _status_envelope(self, statuses: list[JSON]) -> JSON:
        # Like Meta, sometimes split one POST into two changes, or two entries.
        if len(statuses) < 2 or self.rng.random() >= self.multi_change_share:
            return self._envelope([{**self._value_head(), "statuses": statuses}])
        cut = self.rng.randint(1, len(statuses) - 1)
        values = [
            {**self._value_head(), "statuses": statuses[:cut]},
            {**self._value_head(), "statuses": statuses[cut:]},
        ]
        if self.rng.random() < 0.5:
            return self._envelope(values)
        entries = [self._envelope([v])["entry"][0] for v in values]
        return {"object": "whatsapp_business_account", "entry": entries}

    def _value_head(self) -> JSON:
        return {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": re.sub(r"\D", "", self.display_phone_number),
                "phone_number_id": self.phone_number_id,
            },
        }

    def _envelope(self, values: list[JSON], *, field: str = "messages") -> JSON:
        changes = [{"field": field, "value": value} for value in values]
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": changes}],
        }

    @staticmethod
    def _encode(envelope: JSON) -> bytes:
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def _slots(self) -> asyncio.Semaphore:
        size = max(1, self.webhook_concurrency)
        if self._semaphore is None or self._semaphore[0] != size:
            self._semaphore = (size, asyncio.Semaphore(size))
        return self._semaphore[1]

    async def _deliver(self, body: bytes) -> None:
        """POST with Meta-like retries: up to ``webhook_retries`` more, backoff from 0.2 s."""
        for attempt in range(self.webhook_retries + 1):
            url = self.webhook_url
            if url is None:
                return
            async with self._slots():
                status = await self._post(url, body)
            if 200 <= status < 300:
                return
            self.webhook_failures += 1
            if attempt < self.webhook_retries:
                await asyncio.sleep(0.2 * 2**attempt)
        self.webhook_dropped += 1

    async def _post(
        self, url: str, body: bytes, *, sign: bool = True, secret: str | None = None
    ) -> int:
        headers = {"Content-Type": "application/json"}
        if sign:
            key = (self.app_secret if secret is None else secret).encode()
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(key, body, "sha256").hexdigest()
        self.webhook_posts += 1
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.webhook_responses.append(status)
        return status

    # --- ids ---------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{int(self._token, 16) % 10**6:06d}{self._ids:09d}"

    def _wamid(self) -> str:
        self._ids += 1
        raw = f"fake:{self.phone_number_id}:{self._token}:{self._ids:012d}".encode()
        return "wamid." + base64.b64encode(raw).decode()

    # --- control endpoints (/_fake/*, no auth) -----------------------------------------

    async def _fake_sent(self, request: web.Request) -> web.StreamResponse:
        offset = int(request.query.get("offset", "0"))
        rows = [
            {
                "wamid": m.wamid,
                "to": m.to,
                "type": m.type,
                "callback_data": m.callback_data,
                "at": m.at,
            }
            for m in self.sent[offset:]
        ]
        return web.json_response(rows)

    async def _fake_stats(self, request: web.Request) -> web.StreamResponse:
        counts = self.count_by_recipient()
        return web.json_response(
            {
                "sent": len(self.sent),
                "recipients": len(counts),
                "max_per_recipient": max(counts.values(), default=0),
                "recipients_with_duplicates": sum(1 for n in counts.values() if n > 1),
                "statuses_emitted": self.statuses_emitted,
                "webhook_posts": self.webhook_posts,
                "webhook_failures": self.webhook_failures,
                "webhook_dropped": self.webhook_dropped,
                "webhook_pending": bool(self._timers or self._pending or self._tasks),
                "requests": dict(self.requests),
            }
        )

    async def _fake_config(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                self.configure(**_obj(await request.json(), "config"))
            except (ValueError, KeyError, GraphError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.config())

    async def _fake_add_template(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(self.add_template(**await request.json()))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _fake_template_status(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(self.set_template_status(**await request.json()))
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _fake_user_writes(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        message_id = await self.user_writes(
            request.match_info["wa_id"],
            body.get("text", "START"),
            name=body.get("name", "Anna"),
            message=body.get("message"),
        )
        return web.json_response({"id": message_id})

    async def _fake_user_preferences(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        try:
            await self.user_preferences(request.match_info["wa_id"], body.get("value", "stop"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"success": True})

    async def _fake_drain(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        try:
            await self.drain(float(body.get("timeout", 10.0)))
        except TimeoutError as exc:
            return web.json_response({"drained": False, "error": str(exc)}, status=504)
        return web.json_response({"drained": True})

    async def _fake_reset(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        self.reset(templates=bool(body.get("templates", False)))
        return web.json_response({"reset": True})


# --- process mode ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rundfunk.testing.fake_graph", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--access-token", default="tok")
    parser.add_argument("--app-secret", default="secret")
    parser.add_argument("--phone-number-id", default="1001")
    parser.add_argument("--waba-id", default="2002")
    parser.add_argument("--display-phone-number", default="+49 151 23456789")
    parser.add_argument("--api-version", default="v21.0")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    graph = FakeGraph(
        access_token=args.access_token,
        app_secret=args.app_secret,
        phone_number_id=args.phone_number_id,
        waba_id=args.waba_id,
        display_phone_number=args.display_phone_number,
        api_version=args.api_version,
        seed=args.seed,
    )
    graph.webhook_url = args.webhook_url
    graph.latency = args.latency
    url = await graph.start(host=args.host, port=args.port)
    print(f"FAKE_GRAPH_URL={url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await graph.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parser().parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
