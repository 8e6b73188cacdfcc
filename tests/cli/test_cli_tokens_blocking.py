"""``rundfunk tokens list|create|revoke|rotate`` and ``rundfunk contacts block|unblock``
against a real database, checked through the services a server would use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner

from rundfunk.cli.main import app
from rundfunk.config import Settings
from rundfunk.db.session import Database
from rundfunk.services import api_tokens, contacts, inbound, sandbox
from rundfunk.services.actors import system_actor

runner = CliRunner()
T = TypeVar("T")


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNDFUNK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RUNDFUNK_DATABASE_URL", database_url)
    return tmp_path


def rundfunk(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def run(work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(Settings().resolved_database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def workspace(slug: str) -> None:
    code, out = rundfunk("workspace", "create", slug)
    assert code == 0, out


def test_tokens_create_list_rotate_revoke(env: Path) -> None:
    workspace("zeitung")
    code, out = rundfunk("tokens", "create", "-w", "zeitung", "--role", "agent", "--name", "crm")
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    found = run(lambda db: api_tokens.authenticate(db, secret))
    assert found is not None and found.actor.role == "agent"

    code, out = rundfunk("tokens", "list", "-w", "zeitung")
    assert code == 0, out
    [line] = [row for row in out.splitlines() if " crm " in row]
    assert "agent" in line and secret[:10] in line and "never" in line
    assert secret not in out
    token_id = line.split()[0]

    code, out = rundfunk("tokens", "rotate", "-w", "zeitung", token_id)
    assert code == 0, out
    new_secret = out.strip().splitlines()[-1]
    assert new_secret.startswith("rf_") and new_secret != secret
    assert run(lambda db: api_tokens.authenticate(db, secret)) is None
    successor = run(lambda db: api_tokens.authenticate(db, new_secret))
    assert successor is not None

    code, out = rundfunk("tokens", "revoke", "-w", "zeitung", str(successor.token_id))
    assert code == 0 and "revoked" in out
    assert run(lambda db: api_tokens.authenticate(db, new_secret)) is None
    code, out = rundfunk("tokens", "list", "-w", "zeitung", "--revoked")
    assert out.count("(revoked") == 2
    # The older command name still works for scripts.
    code, out = rundfunk("token", "create", "-w", "zeitung")
    assert code == 0 and out.strip().splitlines()[-1].startswith("rf_")


def test_tokens_errors_are_messages_and_stay_in_their_workspace(env: Path) -> None:
    workspace("zeitung")
    workspace("rival")
    code, out = rundfunk("tokens", "create", "-w", "zeitung", "--name", "mine")
    secret = out.strip().splitlines()[-1]
    found = run(lambda db: api_tokens.authenticate(db, secret))
    assert found is not None
    cases = [
        (("tokens", "revoke", "-w", "rival", str(found.token_id)), "no active API token"),
        (("tokens", "rotate", "-w", "rival", str(found.token_id)), "no active API token"),
        (("tokens", "create", "-w", "zeitung", "--name", " "), "give the token a name"),
        (("tokens", "list", "-w", "nowhere"), "no workspace 'nowhere'"),
    ]
    for args, message in cases:
        code, out = rundfunk(*args)
        assert code == 2 and message in out, (args, out)
        assert "Traceback" not in out
    code, out = rundfunk("tokens", "list", "-w", "rival")
    assert "mine" not in out
    assert run(lambda db: api_tokens.authenticate(db, secret)) is not None


def test_contacts_block_and_unblock_by_id_or_address(env: Path) -> None:
    workspace("zeitung")
    workspace("rival")
    code, out = rundfunk("channel", "add", "-w", "zeitung", "--name", "Probe")
    assert code == 0, out

    async def write(db: Database, text: str) -> inbound.Outcome:
        return await sandbox.phone_writes(db, channel_id=1, address="4915100000088", text=text)

    first = run(lambda db: write(db, "START"))
    code, out = rundfunk("contacts", "block", "-w", "zeitung", "4915100000088")
    assert code == 0 and f"contact {first.contact_id} is blocked" in out, out
    assert run(lambda db: write(db, "spam")).action == "ignore"
    assert run(lambda db: write(db, "STOP")).action == "ignore"

    async def contact(db: Database) -> dict[str, object]:
        return await contacts.get_contact(
            db, actor=system_actor(1), contact_id=first.contact_id
        )

    shown = run(contact)
    assert shown["blocked"] is True and shown["blocked_messages"] == 2
    assert shown["status"] == "subscribed"  # STOP while blocked changed nothing either

    code, out = rundfunk("contacts", "unblock", "-w", "zeitung", str(first.contact_id))
    assert code == 0 and "unblocked" in out, out
    assert run(lambda db: write(db, "hello")).action == "conversation"
    code, out = rundfunk("contacts", "block", "-w", "rival", str(first.contact_id))
    assert code == 2 and "no contact" in out  # another workspace's contact
    code, out = rundfunk("contacts", "block", "-w", "nowhere", "1")
    assert code == 2 and "no workspace" in out
    code, out = rundfunk("contacts", "block", "-w", "zeitung", "4999999")
    assert code == 2 and "no contact '4999999'" in out
