"""a version on every channel row, so each process notices a change

Every change to a channel (rate, secrets, status) bumps ``channels.version``; each
process compares the versions of the channels it holds built with the rows' and
rebuilds what moved (``worker/channel_watch.py``); ``rate_limits.rate`` keeps the rate
a sender's slots were reserved at, so the PostgreSQL limiter re-spaces them when it
changes (as the Redis one does). The Graph API address became an
operator setting (``RUNDFUNK_WHATSAPP_API_BASE_URL``), so the tenant-chosen
``api_base_url`` leaves every channel's settings.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_channels = sa.table(
    "channels",
    sa.column("id", sa.Integer()),
    sa.column("settings", sa.JSON()),
)


def upgrade() -> None:
    op.add_column(
        "channels",
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("1")),
    )
    # The PostgreSQL limiter re-spaces reserved slots when a sender's rate changes.
    op.add_column("rate_limits", sa.Column("rate", sa.Float(), nullable=True))
    conn = op.get_bind()
    for row in conn.execute(sa.select(_channels.c.id, _channels.c.settings)).all():
        settings: Any = row.settings
        if isinstance(settings, str):
            settings = json.loads(settings)
        if isinstance(settings, dict) and "api_base_url" in settings:
            kept = {k: v for k, v in settings.items() if k != "api_base_url"}
            conn.execute(
                _channels.update().where(_channels.c.id == row.id).values(settings=kept)
            )


def downgrade() -> None:
    with op.batch_alter_table("rate_limits") as batch:
        batch.drop_column("rate")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("version")
