"""Storing a channel's synced template list."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from rundfunk.db.tables import templates as templates_table
from rundfunk.services import templates
from service_world import World

FOUND = [
    {
        "name": f"news_{n}",
        "language": "de",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Hallo {{1}}"}],
    }
    for n in range(5)
]


async def test_syncs_that_meet_store_the_list_once(world: World) -> None:
    # The hourly sync and a click at the same moment: on PostgreSQL both used to insert.
    for _ in range(5):
        await asyncio.gather(
            *(
                templates.store_synced(
                    world.db,
                    workspace_id=world.workspace_id,
                    channel_id=world.channel_id,
                    found=FOUND,
                )
                for _ in range(4)
            )
        )
    assert await world.scalar(select(func.count()).select_from(templates_table)) == len(FOUND)
