"""The sandbox's inbound path cleans like a platform's webhook: lone surrogates and NUL
are replaced and a name is cut to its column, so what a simulated phone writes is
stored (on PostgreSQL a NUL and a 250-character name used to fail the write)."""

from __future__ import annotations

from sqlalchemy import select

from rundfunk.db.tables import contacts, messages
from service_world import World


async def test_a_phone_writing_unstorable_text_is_stored_cleaned(world: World) -> None:
    outcome = await world.write("4915100000077", "Hal\x00lo \ud800!", name="N" * 250)
    assert not outcome.duplicate
    async with world.db.read() as conn:
        text = await conn.scalar(select(messages.c.text).where(messages.c.id == outcome.message_id))
        name = await conn.scalar(select(contacts.c.name).where(contacts.c.id == outcome.contact_id))
    assert text == "Hal\ufffdlo \ufffd!"
    assert name == "N" * 200
