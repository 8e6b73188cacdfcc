"""The real ``rundfunk serve`` process for end-to-end tests, and how to start one.

Kept out of ``conftest.py`` so that test modules can import it by a name of its own
(pytest loads every folder's ``conftest`` under the same module name).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from engines import ON_POSTGRES, postgres_database

RUNDFUNK = Path(sys.executable).parent / "rundfunk"
START_TIMEOUT_S = 30.0
TOKEN_LINE = re.compile(r"^\s*API token:\s*(rf_\S+)\s*$", re.MULTILINE)
CHANNEL_LINE = re.compile(r"/sandbox/(\d+)/phones/")
LOGIN_LINE = re.compile(r"^\s*login:\s*(\S+)\s*$", re.MULTILINE)
PASSWORD_LINE = re.compile(r"^\s*password:\s*(\S+)\s*$", re.MULTILINE)

# Fast loops for tests: the scheduler and idle dispatcher look for work every 0.1 s,
# retries start at 0.2 s. MAX_ATTEMPTS 8 (default 5) keeps the 20 % failure-injection
# test from failing by chance (0.2**5 * 100 sends ≈ 3 %; 0.2**8 * 100 ≈ 0.03 %).
SERVER_ENV = {
    "RUNDFUNK_POLL_SECONDS": "0.1",
    "RUNDFUNK_DEMO": "true",
    "RUNDFUNK_RETRY_BASE_SECONDS": "0.2",
    "RUNDFUNK_RETRY_CAP_SECONDS": "5",
    "RUNDFUNK_MAX_ATTEMPTS": "8",
    # Never the real Graph API from a test: a closed loopback port unless a test's own
    # fake Graph server is named instead.
    "RUNDFUNK_WHATSAPP_API_BASE_URL": "http://127.0.0.1:9",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``rundfunk serve`` process and what a test needs to talk to it."""

    def __init__(self, data_dir: Path, port: int, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDFUNK_")}
        self.env.update(SERVER_ENV)
        self.env.update(extra_env or {})
        self.env["RUNDFUNK_DATA_DIR"] = str(data_dir)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.token = ""
        self.channel_id = 0
        self.email = ""  # the demo owner's console login
        self.password = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.client: httpx.Client | None = None
        self._output: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self.starts = 0

    # -- process ---------------------------------------------------------------------
    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        offset = len(self.output)
        self.process = subprocess.Popen(
            [str(RUNDFUNK), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill reaches every child
        )
        self.starts += 1
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        self._wait_healthy()
        if not self.token:  # first start: the banner is printed once, on the empty database
            banner = self.output[offset:]
            token = TOKEN_LINE.search(banner)
            channel = CHANNEL_LINE.search(banner)
            assert token and channel, f"no token / channel id in the banner:\n{banner}"
            self.token = token.group(1)
            self.channel_id = int(channel.group(1))
            login, password = LOGIN_LINE.search(banner), PASSWORD_LINE.search(banner)
            assert login and password, f"no login / password in the banner:\n{banner}"
            self.email, self.password = login.group(1), password.group(1)
        self._new_client()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            with self._lock:
                self._output.append(raw.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._output)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last lines
                raise AssertionError(
                    f"rundfunk serve exited with {self.process.returncode}:\n{self.output[-5000:]}"
                )
            try:
                response = httpx.get(f"{self.base_url}/healthz", timeout=2.0)
                # The banner is printed before uvicorn starts; give the reader a moment.
                if response.status_code == 200 and (self.token or TOKEN_LINE.search(self.output)):
                    return
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(
            f"no healthy server within {START_TIMEOUT_S}s (last: {last!r}):\n{self.output[-5000:]}"
        )

    def _new_client(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = httpx.Client(base_url=self.base_url, headers=self.auth, timeout=30.0)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def restart(self) -> None:
        """Start again on the same data dir and port (after ``kill`` or ``stop``)."""
        if self.process is not None and self.process.poll() is None:
            self.stop()
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go within 10 s."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)

    # -- clients and CLI -----------------------------------------------------------------
    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def async_client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=60.0, limits=limits, **kwargs
        )

    def cli(self, *args: str) -> str:
        """Run ``rundfunk <args>`` against this server's database; returns stdout."""
        done = subprocess.run(
            [str(RUNDFUNK), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (
            f"rundfunk {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout


class WebOnly(Server):
    """``rundfunk serve --no-worker``: the web node of the scaled topology."""

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            [
                str(RUNDFUNK),
                "serve",
                "--no-worker",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        self._wait_healthy()
        banner = self.output
        token, channel = TOKEN_LINE.search(banner), CHANNEL_LINE.search(banner)
        assert token and channel, f"no token / channel id in the banner:\n{banner}"
        self.token, self.channel_id = token.group(1), int(channel.group(1))
        login, password = LOGIN_LINE.search(banner), PASSWORD_LINE.search(banner)
        assert login and password, f"no login / password in the banner:\n{banner}"
        self.email, self.password = login.group(1), password.group(1)
        self._new_client()


LOG_DIR = Path(tempfile.gettempdir()) / "rundfunk-e2e-logs"


def _make_server(extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    if ON_POSTGRES:
        with postgres_database(migrated=True) as url:
            yield from _serve({**(extra_env or {}), "RUNDFUNK_DATABASE_URL": url})
    else:
        yield from _serve(extra_env)


def _serve(extra_env: dict[str, str] | None) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-") as tmp:
        server = Server(Path(tmp) / "data", _free_port(), extra_env)
        died: int | None = None
        try:
            server.start()
            yield server
        finally:
            if server.process is not None:
                died = server.process.poll()
                if died is not None and server.process.returncode == -signal.SIGKILL:
                    died = None  # our own kill() (a test that did not restart)
            server.stop()
            if server.process is not None and server.process.poll() is None:
                server.kill()
            # Keep the server's output for post-mortems; show its tail if it died on its own.
            LOG_DIR.mkdir(exist_ok=True)
            log = LOG_DIR / f"server-{os.getpid()}-{server.port}.log"
            log.write_text(server.output)
            if died is not None:
                print(
                    f"\n[e2e] the server had exited by itself ({died}); log: {log}\n"
                    f"{server.output[-4000:]}"
                )
