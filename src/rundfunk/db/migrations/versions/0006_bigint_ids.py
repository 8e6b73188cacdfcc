"""64-bit ids and foreign keys on PostgreSQL

Every id, foreign key and id-holding column (``deliveries.channel_id``,
``audit_log.target_id``, ...) becomes BIGINT, and the sequence behind each id counts to
2^63 - 1: at internet scale deliveries and messages pass 2^31 rows, and the API accepts
ids up to 2^63 - 1. One ``ALTER TABLE`` per table, so each table is rewritten once (on a
large installation this takes a while and locks the table; run it in a quiet hour).
SQLite needs nothing: its INTEGER is 64 bits already.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The columns as they were at 0005, by table; "id" first where the table has one.
COLUMNS: dict[str, tuple[str, ...]] = {
    "workspaces": ("id",),
    "members": ("id", "workspace_id"),
    "sessions": ("id", "member_id"),
    "api_tokens": ("id", "workspace_id", "member_id"),
    "channels": ("id", "workspace_id"),
    "contacts": ("id", "workspace_id", "channel_id"),
    "topics": ("id", "workspace_id"),
    "subscriptions": ("id", "workspace_id", "contact_id", "topic_id"),
    "consent_events": ("id", "workspace_id", "contact_id", "topic_id"),
    "broadcasts": ("id", "workspace_id", "channel_id"),
    "deliveries": ("id", "broadcast_id", "contact_id", "channel_id"),
    "templates": ("id", "workspace_id", "channel_id"),
    "conversations": ("id", "workspace_id", "channel_id", "contact_id", "assignee_id"),
    "canned_responses": ("id", "workspace_id"),
    "messages": (
        "id",
        "workspace_id",
        "channel_id",
        "contact_id",
        "conversation_id",
        "author_id",
    ),
    "audit_log": ("id", "workspace_id", "target_id"),
    "sandbox_messages": ("id", "channel_id"),
    "webhook_inbox": ("channel_id",),  # its id has been BIGINT since 0005
}


def _alter(column_type: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE {column_type}' for c in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')
        if "id" in columns:
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
            ).scalar()
            if sequence:
                op.execute(f"ALTER SEQUENCE {sequence} AS {column_type}")


def upgrade() -> None:
    _alter("BIGINT")


def downgrade() -> None:
    # Fails (and changes nothing) once any value is above 2^31 - 1.
    _alter("INTEGER")
