"""A PostgreSQL and a Redis server of a test's own, on free loopback ports, to stop at will.

The shared servers (5432, 6379) serve every test and every helper on the machine and
must never be stopped; a test of what an outage does starts its own: ``initdb`` into a
temporary directory (trust authentication, no fsync: nothing here must survive the
machine), ``pg_ctl start`` / ``pg_ctl stop -m immediate`` (a crash: no checkpoint, the
next start runs crash recovery), and ``redis-server`` without persistence, stopped by
``SHUTDOWN NOSAVE`` and started again on the same port.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _as_postgres_user() -> list[str]:
    """How to run PostgreSQL's programs: as ourselves, or as ``postgres`` when root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def can_run_postgres() -> str | None:
    """Why a private PostgreSQL cannot start here (None: it can)."""
    if postgres_bin() is None:
        return "no /usr/lib/postgresql/*/bin/initdb"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


def can_run_redis() -> str | None:
    return None if shutil.which("redis-server") else "no redis-server"


class PrivatePostgres:
    """One PostgreSQL cluster in a temporary directory; ``url`` is its ``postgres`` db."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="rundfunk-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*_as_postgres_user(), str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.log.read_text("utf-8", "replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} {args} failed:\n{done.stdout}{done.stderr}\n{log}")

    def start(self) -> None:
        """Start and wait until it accepts connections (after a crash: recovery first)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)  # fmt: skip

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend goes at once, nothing is flushed."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """One ``redis-server`` without persistence; ``url`` points at its database 0."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.root = Path(tempfile.mkdtemp(prefix="rundfunk-private-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        """``FLUSHALL``: empty (a server of our own; never the shared one)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: the server exits, and what it held is gone."""
        assert self.process is not None
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"SHUTDOWN NOSAVE\r\n")
                sock.recv(64)  # the server closes the connection as it goes
        except OSError:
            pass
        self.process.wait(timeout=10)

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
