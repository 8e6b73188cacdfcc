"""webhook items that could not be applied (the dead-letter list)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rundfunk.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_dead_letters",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("workspace_id", _big_id(), nullable=False),
        sa.Column("channel_id", _big_id(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("first_failed_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_webhook_dead_letters_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_webhook_dead_letters_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_dead_letters")),
    )
    op.create_index(
        op.f("ix_webhook_dead_letters_workspace_id_id"),
        "webhook_dead_letters",
        ["workspace_id", "id"],
    )
    op.create_index(
        op.f("ix_webhook_dead_letters_channel_id_id"),
        "webhook_dead_letters",
        ["channel_id", "id"],
    )


def downgrade() -> None:
    op.drop_table("webhook_dead_letters")
