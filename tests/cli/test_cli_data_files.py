"""The embedded mode's files: created owner-only, and never created by surprise.

``migrate`` (like ``serve`` and ``workspace create``) makes a new data dir with its
SQLite file and secret key, readable by the owner only; a command that only works on
an existing database, run where there is none, says where it looked instead of making
an empty one.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rundfunk.cli.main import app
from rundfunk.config import Settings

runner = CliRunner()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no Rundfunk data, and the default SQLite settings."""
    monkeypatch.delenv("RUNDFUNK_DATABASE_URL", raising=False)
    monkeypatch.delenv("RUNDFUNK_SECRET_KEY", raising=False)
    monkeypatch.setenv("RUNDFUNK_DATA_DIR", str(tmp_path / "srv" / "rundfunk-data"))
    return tmp_path / "srv" / "rundfunk-data"


def test_a_new_data_dir_is_owner_only(fresh: Path) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    key = Settings().resolved_secret_key  # generated on first use, as serve does
    assert key and (fresh / "secret.key").read_text().strip() == key
    assert _mode(fresh) == 0o700
    assert _mode(fresh / "rundfunk.db") == 0o600
    assert _mode(fresh / "secret.key") == 0o600
    for extra in fresh.glob("rundfunk.db-*"):  # SQLite's -wal/-shm follow the file's mode
        assert _mode(extra) & 0o077 == 0, extra
    assert Settings().resolved_secret_key == key  # read back, not replaced


def test_commands_refuse_to_create_an_empty_database(fresh: Path) -> None:
    for args in (
        ["member", "create", "-w", "demo", "--email", "a@b.de", "--password", "long enough pw"],
        ["token", "create", "-w", "demo"],
        ["broadcast", "send", "-w", "demo", "--channel", "1", "--text", "Hallo"],
        ["channel", "add", "-w", "demo", "--name", "S"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"no Rundfunk database at {(fresh / 'rundfunk.db').resolve()}" in result.output
        assert "RUNDFUNK_DATA_DIR" in result.output and "RUNDFUNK_DATABASE_URL" in result.output
        assert "Traceback" not in result.output
    assert not fresh.exists()  # nothing was made, not even the directory


def test_an_explicit_sqlite_url_to_nowhere_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNDFUNK_DATABASE_URL", f"sqlite:///{tmp_path}/typo.db")
    result = runner.invoke(app, ["token", "create", "-w", "demo"])
    assert result.exit_code == 2
    assert f"{tmp_path}/typo.db (from RUNDFUNK_DATABASE_URL)" in result.output
    assert not (tmp_path / "typo.db").exists()


def test_init_commands_still_create_it(fresh: Path) -> None:
    result = runner.invoke(app, ["workspace", "create", "zeitung"])
    assert result.exit_code == 0, result.output
    assert (fresh / "rundfunk.db").exists()
    result = runner.invoke(app, ["token", "create", "-w", "zeitung"])  # now it exists
    assert result.exit_code == 0, result.output
