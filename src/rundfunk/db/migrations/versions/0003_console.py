"""console: member language and invitations, sessions, login throttling, canned responses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rundfunk.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("invite_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("invite_expires_at", rundfunk.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.create_unique_constraint(op.f("uq_members_invite_hash"), ["invite_hash"])
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent_last_seen_at", rundfunk.db.types.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_sessions_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_member_id"), "sessions", ["member_id"], unique=False)
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.Column("locked_until", rundfunk.db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_attempts")),
    )
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("short_code", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", rundfunk.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_canned_responses_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
        sa.UniqueConstraint(
            "workspace_id", "short_code", name=op.f("uq_canned_responses_workspace_id_short_code")
        ),
    )


def downgrade() -> None:
    op.drop_table("canned_responses")
    op.drop_table("login_attempts")
    op.drop_index(op.f("ix_sessions_member_id"), table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("agent_last_seen_at")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_members_invite_hash"), type_="unique")
        batch_op.drop_column("invite_expires_at")
        batch_op.drop_column("invite_hash")
        batch_op.drop_column("locale")
