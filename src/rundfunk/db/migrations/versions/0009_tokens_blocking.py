"""API token use and blocked contacts' messages

A contact's block is dated (``blocked_at``) and counts what the person wrote while
blocked (``blocked_messages``); those messages themselves are rows of ``messages``
with the inbound status ``blocked``, outside every conversation. API tokens already
had ``last_used_at`` and ``revoked_at`` (0001): nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rundfunk.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("blocked_at", rundfunk.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("blocked_messages", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("blocked_messages")
        batch_op.drop_column("blocked_at")
