"""Apply the platform's status reports to deliveries and messages, forward-only.

Statuses arrive out of order and duplicated; ``core.deliveries.advance`` decides
whether each one moves a row. A batch is applied with one read and one write per
table, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import StatusUpdate
from rundfunk.core.deliveries import DeliveryStatus, advance
from rundfunk.db.tables import deliveries, messages
from rundfunk.db.types import utcnow


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """Our callback data: ``d:<delivery id>`` or ``m:<message id>``."""
    if not data or len(data) < 3 or data[1] != ":" or data[0] not in "dm":
        return None
    try:
        return ("deliveries" if data[0] == "d" else "messages", int(data[2:]))
    except ValueError:
        return None


async def apply_statuses(
    conn: AsyncConnection, *, channel_id: int, updates: Sequence[StatusUpdate]
) -> int:
    """Apply a batch of status updates; returns how many rows changed."""
    by_table: dict[str, dict[int, list[StatusUpdate]]] = {"deliveries": {}, "messages": {}}
    by_provider: dict[str, list[StatusUpdate]] = {}
    for item in updates:
        target = parse_callback(item.callback_data)
        if target is None:
            by_provider.setdefault(item.provider_message_id, []).append(item)
        else:
            by_table[target[0]].setdefault(target[1], []).append(item)
    changed = 0
    for name, table in (("deliveries", deliveries), ("messages", messages)):
        changed += await _apply(conn, table, channel_id, by_table[name], by_provider)
    return changed


async def _apply(
    conn: AsyncConnection,
    table: Table,
    channel_id: int,
    by_id: dict[int, list[StatusUpdate]],
    by_provider: dict[str, list[StatusUpdate]],
) -> int:
    if not by_id and not by_provider:
        return 0
    # Scoped to the channel: a webhook of one channel can never touch another's rows.
    conditions = []
    if by_id:
        conditions.append(table.c.id.in_(list(by_id)))
    if by_provider:
        conditions.append(table.c.provider_message_id.in_(list(by_provider)))
    rows = await conn.execute(
        select(table.c.id, table.c.status, table.c.provider_message_id).where(
            table.c.channel_id == channel_id, or_(*conditions)
        )
    )
    params: list[dict[str, Any]] = []
    for row in rows:
        incoming = by_id.get(row.id, []) + by_provider.pop(row.provider_message_id, [])
        status = DeliveryStatus(row.status)
        error: StatusUpdate | None = None
        for item in sorted(incoming, key=lambda u: u.timestamp):
            moved = advance(status, item.status)
            if moved is not None:
                status = moved
                error = item if moved is DeliveryStatus.FAILED else None
        if status.value != row.status:
            params.append(
                {
                    "_id": row.id,
                    "_status": status.value,
                    "_reason": error.error_reason if error else None,
                }
            )
    if params:
        values: dict[str, Any] = {
            "status": bindparam("_status"),
            "error_reason": bindparam("_reason"),
        }
        if table is deliveries:
            values["updated_at"] = utcnow()
        await conn.execute(
            update(table).where(table.c.id == bindparam("_id")).values(**values), params
        )
    return len(params)
