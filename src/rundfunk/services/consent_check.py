"""Who still consents to a broadcast delivery: subscribed, not blocked, and still in
one of the broadcast's topics when it has any.

Asked twice: when a chunk is claimed, and again immediately before each send
(``still_wanted``), because a claimed chunk can wait on the rate limiter and a STOP in
that time must still be honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import contacts, deliveries, subscriptions

if TYPE_CHECKING:
    from rundfunk.services.dispatch import SendJob


def consents(
    status: str, blocked: bool, topic_ids: Sequence[int], item: Any, in_topics: set[tuple[int, int]]
) -> bool:
    """Whether a contact in this state wants ``item`` (a delivery with its broadcast's topics)."""
    if status != "subscribed" or blocked:
        return False
    return not topic_ids or (item.contact_id, item.broadcast_id) in in_topics


async def still_wanted(db: Database, jobs: Sequence[SendJob]) -> set[int]:
    """The ids of these broadcast deliveries that are still this claim's and whose
    contact still consents right now.

    Checked immediately before sending, because a claimed chunk can wait seconds on
    the rate limiter: a STOP in that time must still be honoured, and a row whose lease
    ran out meanwhile and that another claim took (``attempts`` moved on, or it is no
    longer ``sending``) must not be sent by both.
    """
    deliveries_only = [job for job in jobs if job.table == "deliveries"]
    if not deliveries_only:
        return set()
    async with db.read() as conn:
        claimed = await conn.execute(
            select(deliveries.c.id, deliveries.c.attempts).where(
                deliveries.c.id.in_([job.id for job in deliveries_only]),
                deliveries.c.status == "sending",
            )
        )
        ours = {(row.id, row.attempts) for row in claimed}
        deliveries_only = [job for job in deliveries_only if (job.id, job.attempts) in ours]
        found = await conn.execute(
            select(contacts.c.id, contacts.c.status, contacts.c.blocked).where(
                contacts.c.id.in_({job.contact_id for job in deliveries_only})
            )
        )
        state = {row.id: (row.status, row.blocked) for row in found}
        in_topics = await topic_members(conn, deliveries_only)
    return {
        job.id
        for job in deliveries_only
        if job.contact_id in state
        and consents(*state[job.contact_id], job.topic_ids, job, in_topics)
    }


async def topic_members(conn: AsyncConnection, rows: Sequence[Any]) -> set[tuple[int, int]]:
    """(contact, broadcast) pairs where the contact is still in one of its topics."""
    wanted = [r for r in rows if r.topic_ids]
    if not wanted:
        return set()
    found = await conn.execute(
        select(subscriptions.c.contact_id, subscriptions.c.topic_id).where(
            subscriptions.c.contact_id.in_({r.contact_id for r in wanted})
        )
    )
    topics_of: dict[int, set[int]] = {}
    for contact_id, topic_id in found:
        topics_of.setdefault(contact_id, set()).add(topic_id)
    return {
        (r.contact_id, r.broadcast_id)
        for r in wanted
        if topics_of.get(r.contact_id, set()) & set(r.topic_ids)
    }
