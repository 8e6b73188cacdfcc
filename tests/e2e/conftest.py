"""End-to-end fixtures: the real ``rundfunk serve`` process on a free loopback port.

``server`` is one process shared by the session (every test makes its own sandbox
channel, so tests don't see each other's phones); ``fresh_server`` is a process of
its own for a test that kills and restarts it. Both parse the first-start banner for
the demo owner's API token and the sandbox channel id. Each server keeps its data in a
temporary data dir; with ``RUNDFUNK_TEST_ENGINE=postgresql`` its database is a fresh
PostgreSQL database of its own (``RUNDFUNK_DATABASE_URL``), dropped after the server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_server import Server, _free_port, _make_server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The shared server: use your own channel (``create_channel``) per test."""
    yield from _make_server()


@pytest.fixture
def fresh_server() -> Iterator[Server]:
    """A server for one test alone (kill / restart it freely)."""
    yield from _make_server()


@pytest.fixture
def graph_port() -> int:
    """The port a test's fake Graph server listens on (the operator's Graph address)."""
    return _free_port()


@pytest.fixture
def whatsapp_server(graph_port: int) -> Iterator[Server]:
    """A server of its own whose unknown send outcomes settle after 3 s (not 120 s),
    sending every WhatsApp request to a fake Graph server on ``graph_port``."""
    yield from _make_server(
        {
            "RUNDFUNK_SETTLE_SECONDS": "3",
            "RUNDFUNK_WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}",
        }
    )
