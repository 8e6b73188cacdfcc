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

from .cli import main
from .errors import ERROR_TITLES, JSON, UNKNOWN_NODE, GraphError
from .faults import Injection
from .knobs import KNOBS
from .media import MEDIA_LIMITS
from .profile import PROFILE_LIMITS, VERTICALS
from .records import SentMessage
from .routes import Handler
from .server import FakeGraph
from .statuses import WINDOW_SECONDS
from .templates import PLACEHOLDER
from .validation import MEDIA_TYPES, MESSAGE_TYPES

__all__ = [
    "ERROR_TITLES",
    "JSON",
    "KNOBS",
    "MEDIA_LIMITS",
    "MEDIA_TYPES",
    "MESSAGE_TYPES",
    "PLACEHOLDER",
    "PROFILE_LIMITS",
    "UNKNOWN_NODE",
    "VERTICALS",
    "WINDOW_SECONDS",
    "FakeGraph",
    "GraphError",
    "Handler",
    "Injection",
    "SentMessage",
    "main",
]
