"""Inbound on PostgreSQL, where writers run in parallel: racing first messages of one
new person all land, with one contact, and nothing is lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from rundfunk.channels.base import InboundMessage
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import contacts, messages
from rundfunk.services import inbound
from rundfunk.services.actors import system_actor
from rundfunk.services.channels import create_channel
from rundfunk.services.workspaces import create_workspace


async def test_racing_first_messages_are_all_kept(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        await upgrade(db)
        workspace_id = await create_workspace(db, slug="race")
        channel = await create_channel(
            db, actor=system_actor(workspace_id), kind="sandbox", name="race"
        )

        def event(address: str, n: int) -> InboundMessage:
            return InboundMessage(
                address=address,
                provider_message_id=f"{address}-{n}",
                timestamp=datetime.now(UTC),
                text=f"Frage {n}",
            )

        addresses = [f"49170{i:04d}" for i in range(20)]
        await asyncio.gather(
            *(
                inbound.receive(db, channel_id=channel["id"], event=event(a, n))
                for a in addresses
                for n in range(4)
            ),
            # and the same provider message twice: stored once
            inbound.receive(db, channel_id=channel["id"], event=event(addresses[0], 0)),
        )
        async with db.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(contacts)) == 20
            stored = await conn.scalar(
                select(func.count()).select_from(messages).where(messages.c.direction == "in")
            )
        assert stored == 80
    finally:
        await db.dispose()
