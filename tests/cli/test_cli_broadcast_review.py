"""``rundfunk broadcast send`` runs the broadcast review: a text that fails or comes out
empty for a subscriber, or a time more than a year ahead, is refused with the reason
(exit 2, no traceback) and nothing is created."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from rundfunk.cli.main import app
from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts
from rundfunk.services import sandbox

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNDFUNK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RUNDFUNK_DATABASE_URL", database_url)
    return tmp_path


def rundfunk(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _in_db(work: object) -> int:
    db = Database(Settings().resolved_database_url)

    async def run() -> int:
        try:
            if work == "subscribe":
                await sandbox.phone_writes(
                    db, channel_id=1, address="4915100", text="START", name="Anna"
                )
                await sandbox.phone_writes(db, channel_id=1, address="4915101", text="START")
                return 0
            async with db.read() as conn:
                return int(await conn.scalar(select(func.count()).select_from(broadcasts)) or 0)
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_broadcast_send_refuses_what_the_review_finds(env: Path) -> None:
    assert rundfunk("workspace", "create", "zeitung")[0] == 0
    assert rundfunk("channel", "add", "-w", "zeitung", "--name", "Probe")[0] == 0
    _in_db("subscribe")
    send = ("broadcast", "send", "-w", "zeitung", "--channel", "1", "--text")
    code, out = rundfunk(*send, "Hallo {{ contact.name.upper() }}")
    assert code == 2 and "Traceback" not in out, out
    assert "for 4915101 the text cannot be personalized" in out
    assert "'None' has no attribute 'upper'" in out
    code, out = rundfunk(*send, "{{ contact.attributes.city | upper }}")
    assert code == 2 and "the message comes out empty" in out, out
    later = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    code, out = rundfunk(*send, "Hi", "--at", later)
    assert code == 2 and "send_at is more than a year ahead" in out, out
    code, out = rundfunk(*send, "x" * 4097)
    assert code == 2 and "longer than 4096 characters" in out, out
    assert _in_db("count") == 0
    code, out = rundfunk(*send, "Hallo {{ contact.name | default('du', true) | upper }}")
    assert code == 0 and "is sending (2 recipients)" in out, out
