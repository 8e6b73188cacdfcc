"""The web server's HTTP connections, as a client with a connection pool sees them.

HTTP clients keep an idle connection for a while and send the next request on it
(httpx: 5 s). A server that closes idle connections at the same moment races that
request: it arrives at a closed socket, the kernel answers with a reset and the client
gets a read error for a request the server never saw. This was seen under load (a
``ReadError`` while thousands of phones subscribed), so the server must keep idle
connections open longer than such clients do.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

CLIENT_IDLE_S = 5.5  # just past httpx's default keep-alive expiry (5 s)


def _get_healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def test_an_idle_connection_outlives_a_clients_keepalive(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        first = _get_healthz(sock)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(CLIENT_IDLE_S)
        second = _get_healthz(sock)
        assert second.startswith(b"HTTP/1.1 200"), (
            f"the server closed the connection after less than {CLIENT_IDLE_S} s idle: "
            f"{second!r}"
        )
