"""One worker per SQLite file, enforced with an operating-system file lock.

On SQLite there is no ``SKIP LOCKED``, and a starting worker hands every ``sending``
row back to the queue because it assumes the rows belonged to a process that died
(``Runtime.start_worker``). A second worker on the same file would send those rows
again, so it must not start. The lock is ``flock`` on ``<file>.worker.lock`` beside
the database: the kernel drops it when the process exits, however it exits, so a
crashed worker never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class WorkerAlreadyRunning(RuntimeError):
    """Another process already runs the dispatcher on this SQLite file."""


class SqliteOwnership:
    def __init__(self, url: str) -> None:
        database = make_url(url).database
        self.path = (
            Path(database + ".worker.lock") if database and database != ":memory:" else None
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the file for this process, or raise ``WorkerAlreadyRunning``."""
        if self.path is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerAlreadyRunning(
                f"another Rundfunk worker already runs on this SQLite database "
                f"({self.path.with_suffix('')}): on SQLite only one process may send "
                "(`rundfunk serve`, or `rundfunk serve --no-worker` plus one "
                "`rundfunk worker`). Use PostgreSQL (RUNDFUNK_DATABASE_URL) for several "
                "workers."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
