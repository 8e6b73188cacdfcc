"""``FakeGraph``: the fake's state, knobs, lifecycle and simulated users."""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from .control import Control
from .errors import JSON, GraphError
from .faults import Injection, SendLimits, roll_injections
from .knobs import knob_values, set_knobs
from .media import MB
from .records import SentMessage
from .routes import GraphRoutes
from .statuses import WINDOW_SECONDS, plan_statuses
from .templates import build_template, check_template_send, find_template
from .validation import check_send
from .webhooks import WebhookSender, encode


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

        # Knobs (see the package docstring); settable at any time.
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
        self._webhooks = WebhookSender(self)
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
        self._limits = SendLimits()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); returns the base URL."""
        # Documents may be 100 MB; aiohttp's default body limit is 1 MB.
        app = web.Application(client_max_size=110 * MB)
        Control(self).add_routes(app)
        GraphRoutes(self).add_routes(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        bound_port = self.runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        self._webhooks.closed = False
        return self.base_url

    async def close(self) -> None:
        """Stop the server, cancel pending webhooks, close the webhook session."""
        self._webhooks.closed = True
        self._webhooks.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self._webhooks.close_session()

    def reset(self, *, templates: bool = False) -> None:
        """Forget traffic (sent, media, windows, counters, pending webhooks); knobs stay."""
        self._webhooks.cancel()
        self._reset_traffic()
        if templates:
            self.templates.clear()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until no status is scheduled and no webhook is pending or being retried."""
        deadline = time.monotonic() + timeout
        webhooks = self._webhooks
        while webhooks.timers or webhooks.pending or webhooks.flush_handle or webhooks.tasks:
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
        set_knobs(self, knobs)

    def config(self) -> JSON:
        return knob_values(self)

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
        template = build_template(
            self._next_id("1"),
            name,
            language=language,
            category=category,
            status=status,
            body=body,
            header=header,
            header_format=header_format,
            buttons=buttons,
        )
        self.templates.append(template)
        return template

    def find_template(self, name: str, language: str) -> JSON | None:
        return find_template(self.templates, name, language)

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
            body = encode({"object": "whatsapp_business_account", "entry": [entry]})
            self._webhooks.spawn(self._webhooks.deliver(body))
        return template

    # --- sends ---------------------------------------------------------------------------

    def _accept(self, payload: JSON) -> JSON:
        """Validate one send like the Cloud API, apply the knobs, record it; the 200 body."""
        wa_id, category, callback = check_send(payload, self.media, self._check_template)
        kind = payload.get("type", "text")
        if kind != "template" and self.enforce_window and not self.in_window(wa_id):
            raise GraphError(
                131047,
                "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number.",
            )
        # Injected errors, then the pair limit, then the throughput limiter.
        roll_injections(self.rng, self.injections)
        self._limits.check(
            wa_id,
            pair_limit_seconds=self.pair_limit_seconds,
            throughput_limit=self.throughput_limit,
        )
        message = SentMessage(self._wamid(), wa_id, payload, time.time(), callback)
        self.sent.append(message)
        if self.webhook_url is not None:
            self._webhooks.schedule(plan_statuses(self, message, category))
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": wa_id}],
            "messages": [{"id": message.wamid, "message_status": "accepted"}],
        }

    def _check_template(self, obj: JSON) -> str:
        return check_template_send(obj, self.templates, self.media)

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
            **self._webhooks.value_head(),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [msg],
        }
        if self.webhook_url is not None:
            await self._webhooks.deliver(encode(self._webhooks.envelope([value])))
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
            **self._webhooks.value_head(),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "user_preferences": [preference],
        }
        if self.webhook_url is not None:
            envelope = self._webhooks.envelope([change_value], field="user_preferences")
            await self._webhooks.deliver(encode(envelope))

    async def post_webhook(
        self, envelope: JSON, *, sign: bool = True, secret: str | None = None
    ) -> int:
        """One raw POST of ``envelope`` (no retry); returns the HTTP status (0: no answer)."""
        if self.webhook_url is None:
            raise RuntimeError("webhook_url is not set")
        body = encode(envelope)
        return await self._webhooks.post(self.webhook_url, body, sign=sign, secret=secret)

    # --- ids ---------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{int(self._token, 16) % 10**6:06d}{self._ids:09d}"

    def _wamid(self) -> str:
        self._ids += 1
        raw = f"fake:{self.phone_number_id}:{self._token}:{self._ids:012d}".encode()
        return "wamid." + base64.b64encode(raw).decode()
