"""``rundfunk worker``: refuses a second worker on one SQLite file (and ``serve`` with
its worker too), and leaves cleanly with exit code 0 on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rundfunk.cli.main import app
from rundfunk.worker.ownership import SqliteOwnership

RUNDFUNK = Path(sys.executable).parent / "rundfunk"


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/not-yet/worker.db"  # a first start: no directory yet
    monkeypatch.setenv("RUNDFUNK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RUNDFUNK_DATABASE_URL", url)
    return url


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "1"]])
def test_a_second_worker_on_one_sqlite_file_is_refused(sqlite_url: str, command: list[str]) -> None:
    first = SqliteOwnership(sqlite_url)  # stands for a running worker process
    first.acquire()
    try:
        result = CliRunner().invoke(app, command)
    finally:
        first.release()
    assert result.exit_code == 2, result.output
    assert "another Rundfunk worker already runs on this SQLite database" in result.output
    assert "PostgreSQL" in result.output


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "1"]])
def test_an_unreachable_redis_is_a_clear_error_without_a_traceback(
    sqlite_url: str, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNDFUNK_REDIS_URL", "redis://user:s3cret@127.0.0.1:1/0")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "RUNDFUNK_REDIS_URL: cannot reach Redis at redis://user:***@127.0.0.1:1/0" in (
        result.output
    )
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


def test_serve_without_worker_may_run_beside_a_worker(sqlite_url: str) -> None:
    """``--no-worker`` only serves: no lock needed (the check is skipped)."""
    first = SqliteOwnership(sqlite_url)
    first.acquire()
    try:
        result = CliRunner().invoke(app, ["serve", "--no-worker", "--port", "0", "--help"])
    finally:
        first.release()
    assert result.exit_code == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_stops_cleanly_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDFUNK_")}
    env.update(RUNDFUNK_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(RUNDFUNK), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = ""
        while "Rundfunk worker is running on SQLite" not in seen:
            line = process.stdout.readline()
            assert line, f"the worker ended early:\n{seen}"
            seen += line
        # While it runs, the file is taken.
        with pytest.raises(RuntimeError, match="already runs"):
            SqliteOwnership(f"sqlite:///{tmp_path}/rundfunk.db").acquire()
        asked = time.monotonic()
        process.send_signal(signum)
        code = process.wait(timeout=10)
        took = time.monotonic() - asked
        rest = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0, rest
    assert "worker stopped: 0 sent, 0 released" in rest
    assert took < 5, took
    # And the file is free again.
    after = SqliteOwnership(f"sqlite:///{tmp_path}/rundfunk.db")
    after.acquire()
    after.release()
