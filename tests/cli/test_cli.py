"""The ``rundfunk`` admin commands against a real database, and their error messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rundfunk.cli.main import app
from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.services import sandbox
from rundfunk.services.workspaces import actor_for_token

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNDFUNK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RUNDFUNK_DATABASE_URL", database_url)
    return tmp_path


def rundfunk(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_admin_commands_build_a_working_workspace(env: Path) -> None:
    assert rundfunk("workspace", "create", "zeitung", "--name", "Die Zeitung")[0] == 0
    code, out = rundfunk(
        "member",
        "create",
        "-w",
        "zeitung",
        "--email",
        "ed@zeitung.de",
        "--role",
        "editor",
        "--password",
        "long-enough-pw",
    )
    assert code == 0 and "role editor" in out
    code, out = rundfunk("token", "create", "-w", "zeitung", "--role", "agent")
    assert code == 0
    token = out.strip().splitlines()[-1]
    db = Database(Settings().resolved_database_url)

    async def token_actor() -> Any:
        try:
            return await actor_for_token(db, token)
        finally:
            await db.dispose()  # pooled connections belong to this event loop

    actor = asyncio.run(token_actor())
    assert actor is not None and actor.role == "agent"

    code, out = rundfunk("channel", "add", "-w", "zeitung", "--name", "Probe")
    assert code == 0 and "id 1" in out

    async def subscribe() -> None:
        await sandbox.phone_writes(db, channel_id=1, address="4915100", text="START")
        await db.dispose()

    asyncio.run(subscribe())
    code, out = rundfunk(
        "broadcast",
        "send",
        "-w",
        "zeitung",
        "--channel",
        "1",
        "--text",
        "Hallo {{ contact.address }}",
    )
    assert code == 0, out
    assert "is sending (1 recipients)" in out
    code, out = rundfunk(
        "broadcast",
        "send",
        "-w",
        "zeitung",
        "--channel",
        "1",
        "--text",
        "Später",
        "--at",
        (datetime.now(UTC) + timedelta(days=30)).isoformat(),  # within a year (issue 10)
    )
    assert code == 0 and "is scheduled" in out


def test_errors_are_messages_not_tracebacks(env: Path) -> None:
    assert rundfunk("workspace", "create", "zeitung")[0] == 0
    cases = [
        (("workspace", "create", "zeitung"), "already exists"),
        (("workspace", "create", "Not A Slug"), "slug must be"),
        (("token", "create", "-w", "nowhere"), "no workspace 'nowhere'"),
        (
            ("member", "create", "-w", "zeitung", "--email", "x@y.de", "--password", "short"),
            "at least 8 characters",
        ),
        (
            ("channel", "add", "-w", "zeitung", "--name", "X", "--kind", "fax"),
            "unknown channel kind",
        ),
        (  # where requests go is the operator's setting, never a channel's
            ("channel", "add", "-w", "zeitung", "--name", "X", "--kind", "whatsapp")
            + ("--config", "api_base_url=http://127.0.0.1:5432"),
            "RUNDFUNK_WHATSAPP_API_BASE_URL",
        ),
        (
            ("broadcast", "send", "-w", "zeitung", "--channel", "99", "--text", "Hi"),
            "no channel 99",
        ),
        (
            (
                "broadcast",
                "send",
                "-w",
                "zeitung",
                "--channel",
                "1",
                "--text",
                "Hi",
                "--at",
                "soon",
            ),
            "not an ISO 8601 time",
        ),
    ]
    for args, message in cases:
        code, out = rundfunk(*args)
        assert code == 2, (args, out)
        assert message in out, (args, out)
        assert "Traceback" not in out


def test_empty_audience_is_refused(env: Path) -> None:
    rundfunk("workspace", "create", "zeitung")
    rundfunk("channel", "add", "-w", "zeitung", "--name", "Leer")
    code, out = rundfunk("broadcast", "send", "-w", "zeitung", "--channel", "1", "--text", "Hi")
    assert code == 2 and "audience is empty" in out


def test_whatsapp_channel_from_the_command_line(env: Path) -> None:
    rundfunk("workspace", "create", "zeitung")
    secrets = ("--config", "access_token=EAAG-cli-token", "--config", "app_secret=cli-secret")
    ids = ("--config", "phone_number_id=1001", "--config", "waba_id=2002")
    code, out = rundfunk(
        "channel",
        "add",
        "-w",
        "zeitung",
        "--name",
        "WA",
        "--kind",
        "whatsapp",
        *ids,
        *secrets,
        "--config",
        "throughput=200",
    )
    assert code == 0, out
    assert "/webhooks/whatsapp/1" in out and "verify token: " in out
    assert "EAAG-cli-token" not in out and "cli-secret" not in out

    code, out = rundfunk(
        "channel",
        "add",
        "-w",
        "zeitung",
        "--name",
        "WA2",
        "--kind",
        "whatsapp",
        *ids,
        "--config",
        "throughput=fast",
        *secrets,
    )
    assert code == 2 and "config.throughput" in out
    code, out = rundfunk("channel", "add", "-w", "zeitung", "--name", "X", "--config", "nokey")
    assert code != 0 and "KEY=VALUE" in out
