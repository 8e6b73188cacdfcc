"""When a token was last used: one write per token a minute, batched; a failed write
(the database is away) is logged, never raised, and tried again on the next use."""

from __future__ import annotations

import logging

import pytest

from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.services import api_tokens, workspaces
from rundfunk.services.actors import Role, system_actor
from rundfunk.web.token_use import TokenUse


async def test_uses_within_a_minute_are_one_write_and_a_batch_is_one_statement(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        ws = await workspaces.create_workspace(db, slug="w")
        for _ in range(3):
            await workspaces.create_token(db, workspace_id=ws, role=Role.AGENT)
        ids = [t.id for t in await api_tokens.list_tokens(db, actor=system_actor(ws))]
        use = TokenUse(db)
        for _ in range(50):  # the same moment: three tokens, one statement
            for token_id in ids:
                use.note(token_id, None)
        await use.close()
        assert use.writes == 1
        listed = await api_tokens.list_tokens(db, actor=system_actor(ws))
        assert all(t.last_used_at is not None for t in listed)
        stored = {t.id: t.last_used_at for t in listed}
        for token_id in ids:  # as stored now: under a minute old, so not written again
            use.note(token_id, stored[token_id])
            use.note(token_id, None)  # nor when this process wrote it under a minute ago
        await use.close()
        assert use.writes == 1
    finally:
        await db.dispose()


async def test_a_failed_write_is_logged_and_tried_on_the_next_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database("postgresql://postgres@127.0.0.1:9/nowhere")  # a closed port: refused
    try:
        use = TokenUse(db)
        with caplog.at_level(logging.WARNING, logger="rundfunk.web.token_use"):
            use.note(7, None)
            await use.close()
            use.note(7, None)  # not remembered as written: tried again
            await use.close()
        failures = [r for r in caplog.records if "could not note the use" in r.getMessage()]
        assert len(failures) == 2 and use.writes == 0
    finally:
        await db.dispose()
