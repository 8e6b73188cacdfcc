"""Migration 0006: ids and foreign keys become 64-bit on PostgreSQL, with the data kept.

A database is migrated to 0005 (the last schema with int4 ids), filled with one row per
table that references the others, and then migrated to the head: every id column must
be BIGINT (sequences too), every row still there with its ids, and an id above 2^31
must be storable and found again. On SQLite the same data survives the same upgrade.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sqlalchemy import text

from rundfunk.db.migrate import MIGRATIONS, upgrade
from rundfunk.db.session import Database


def _load_0006() -> ModuleType:
    path = MIGRATIONS / "versions" / "0006_bigint_ids.py"
    spec = importlib.util.spec_from_file_location("rundfunk_migration_0006", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


m0006 = _load_0006()

T = "'2026-12-01 10:00:00'"
# One row per table at revision 0005, each pointing at the rows before it.
ROWS = [
    f"INSERT INTO workspaces (id, slug, name, settings, created_at)"
    f" VALUES (7, 'w', 'W', '{{}}', {T})",
    f"INSERT INTO members (id, workspace_id, email, name, role, created_at)"
    f" VALUES (11, 7, 'a@b.c', 'A', 'owner', {T})",
    f"INSERT INTO sessions (id, token_hash, member_id, csrf_token, created_at, expires_at)"
    f" VALUES (12, 'h', 11, 'c', {T}, {T})",
    f"INSERT INTO api_tokens (id, workspace_id, member_id, name, role, prefix, token_hash,"
    f" created_at) VALUES (13, 7, 11, 'n', 'owner', 'rf_', 'th', {T})",
    f"INSERT INTO channels (id, workspace_id, kind, name, settings, status, created_at)"
    f" VALUES (21, 7, 'sandbox', 'S', '{{}}', 'active', {T})",
    f"INSERT INTO contacts (id, workspace_id, channel_id, address, attributes, tags, status,"
    f" blocked, created_at, updated_at) VALUES (31, 7, 21, '49151', '{{}}', '[]', 'subscribed',"
    f" false, {T}, {T})",
    f"INSERT INTO topics (id, workspace_id, key, name, created_at) VALUES (41, 7, 'k', 'K', {T})",
    f"INSERT INTO subscriptions (id, workspace_id, contact_id, topic_id, created_at)"
    f" VALUES (42, 7, 31, 41, {T})",
    f"INSERT INTO consent_events (id, workspace_id, contact_id, kind, topic_id, source, actor,"
    f" created_at) VALUES (43, 7, 31, 'opt_in', 41, 'keyword', 'contact', {T})",
    f"INSERT INTO broadcasts (id, workspace_id, channel_id, text, topic_ids, status, total,"
    f" created_by, created_at) VALUES (51, 7, 21, 'hi', '[]', 'done', 1, 'cli', {T})",
    f"INSERT INTO deliveries (id, broadcast_id, contact_id, channel_id, status, attempts,"
    f" next_attempt_at, updated_at) VALUES (52, 51, 31, 21, 'sent', 1, {T}, {T})",
    f"INSERT INTO templates (id, workspace_id, channel_id, name, language, category, status,"
    f" components, updated_at) VALUES (53, 7, 21, 't', 'de', 'UTILITY', 'APPROVED', '[]', {T})",
    f"INSERT INTO conversations (id, workspace_id, channel_id, contact_id, status, assignee_id,"
    f" last_message_at, created_at) VALUES (61, 7, 21, 31, 'open', 11, {T}, {T})",
    f"INSERT INTO canned_responses (id, workspace_id, short_code, text, created_at)"
    f" VALUES (62, 7, 'hi', 'Hello', {T})",
    f"INSERT INTO messages (id, workspace_id, channel_id, contact_id, conversation_id,"
    f" direction, kind, text, status, author_id, attempts, created_at)"
    f" VALUES (63, 7, 21, 31, 61, 'out', 'text', 'x', 'sent', 11, 1, {T})",
    f"INSERT INTO audit_log (id, workspace_id, actor, action, target_type, target_id, details,"
    f" created_at) VALUES (71, 7, 'cli', 'broadcast.send', 'broadcast', 51, '{{}}', {T})",
    f"INSERT INTO sandbox_messages (id, channel_id, address, provider_message_id, status,"
    f" received_at) VALUES (72, 21, '49151', 'sb-1', 'sent', {T})",
    f"INSERT INTO webhook_inbox (id, channel_id, received_at, body, attempts)"
    f" VALUES (73, 21, {T}, X'7b7d', 0)",
]
ROWS_PG = [row.replace("X'7b7d'", "'\\x7b7d'::bytea") for row in ROWS]

BIG = 2**40 + 3  # far above int4's 2,147,483,647


async def _ids(db: Database) -> dict[str, list[tuple[int, ...]]]:
    """Every id-like column of every table, as stored."""
    found: dict[str, list[tuple[int, ...]]] = {}
    async with db.engine.connect() as conn:
        for table, columns in m0006.COLUMNS.items():
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = await conn.execute(text(f'SELECT {listed} FROM "{table}" ORDER BY 1'))
            found[table] = [tuple(row) for row in rows]
    return found


async def _fill_and_upgrade(db: Database, rows: list[str]) -> dict[str, list[tuple[int, ...]]]:
    await upgrade(db, "0005")
    async with db.engine.begin() as conn:
        for row in rows:
            await conn.execute(text(row))
    before = await _ids(db)
    assert all(before.values()), before  # one row in every table
    await upgrade(db)
    after = await _ids(db)
    assert after == before
    return after


async def test_postgresql_ids_become_bigint_and_the_data_survives(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        before = await _fill_and_upgrade(db, ROWS_PG)
        assert before["deliveries"] == [(52, 51, 31, 21)]
        async with db.engine.connect() as conn:
            types = {
                (r.table_name, r.column_name): r.data_type
                for r in await conn.execute(
                    text(
                        "SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'public'"
                    )
                )
            }
            sequences = {
                r.sequencename: r.data_type
                for r in await conn.execute(
                    text("SELECT sequencename, data_type::text FROM pg_sequences")
                )
            }
        for table, columns in m0006.COLUMNS.items():
            for column in columns:
                assert types[(table, column)] == "bigint", (table, column)
        assert sequences and set(sequences.values()) == {"bigint"}, sequences
        # An id above 2^31 is stored, referenced and found; the sequences count past it.
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO channels (id, workspace_id, kind, name, settings, status,"
                    f" created_at) VALUES ({BIG}, 7, 'sandbox', 'Big', '{{}}', 'active', {T})"
                )
            )
            for sequence in ("contacts_id_seq", "deliveries_id_seq"):
                await conn.execute(text(f"SELECT setval('{sequence}', 3000000000)"))
            contact = (
                await conn.execute(
                    text(
                        f"INSERT INTO contacts (workspace_id, channel_id, address, attributes,"
                        f" tags, status, blocked, created_at, updated_at) VALUES (7, {BIG},"
                        f" '49152', '{{}}', '[]', 'subscribed', false, {T}, {T}) RETURNING id"
                    )
                )
            ).scalar()
            delivery = (
                await conn.execute(
                    text(
                        f"INSERT INTO deliveries (broadcast_id, contact_id, channel_id, status,"
                        f" attempts, next_attempt_at, updated_at)"
                        f" VALUES (51, {contact}, {BIG}, 'queued', 0, {T}, {T}) RETURNING id"
                    )
                )
            ).scalar()
            found = (
                await conn.execute(
                    text(
                        "SELECT d.id, d.contact_id, c.channel_id FROM deliveries d"
                        f" JOIN contacts c ON c.id = d.contact_id WHERE d.id = {delivery}"
                    )
                )
            ).one()
        assert contact == delivery == 3_000_000_001
        assert tuple(found) == (3_000_000_001, 3_000_000_001, BIG)
    finally:
        await db.dispose()


async def test_sqlite_upgrade_through_0006_keeps_the_data(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    try:
        await _fill_and_upgrade(db, ROWS)
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO topics (id, workspace_id, key, name, created_at)"
                    f" VALUES ({BIG}, 7, 'big', 'Big', {T})"
                )
            )
            await conn.execute(text(f"UPDATE subscriptions SET topic_id = {BIG}"))
            found = (await conn.execute(text("SELECT topic_id FROM subscriptions"))).scalar()
        assert found == BIG
    finally:
        await db.dispose()
