"""The status reports Meta would send for one accepted message, planned up front."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .errors import JSON
from .records import SentMessage

if TYPE_CHECKING:
    from .server import FakeGraph

WINDOW_SECONDS = 24 * 3600


def plan_statuses(graph: FakeGraph, message: SentMessage, category: str) -> list[JSON]:
    """The message's statuses in posting order, drawn from ``graph.rng`` and its knobs.

    ``sent``, ``delivered`` (may be skipped when read) and ``read`` (``read_share``) with
    pricing, or ``failed`` for an undeliverable user; shuffled and duplicated if set.
    """
    wa_id, t0 = message.to, int(message.at)
    plan: list[JSON]
    if wa_id in graph.undeliverable:
        failed = status_object(message, "failed", t0)
        failed["errors"] = [
            {
                "code": 131026,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."},
            }
        ]
        plan = [failed]
        if graph.late_delivered_after_failed:
            plan.append(status_object(message, "delivered", t0 + 1))
    else:
        conversation: JSON = {
            "id": hashlib.sha1(f"{wa_id}:{category}".encode()).hexdigest(),
            "origin": {"type": category},
        }
        billed: JSON = {
            "conversation": conversation,
            "pricing": {"billable": True, "pricing_model": "PMP", "category": category},
        }
        expires = str(t0 + WINDOW_SECONDS)
        sent = {
            **status_object(message, "sent", t0),
            **billed,
            "conversation": {**conversation, "expiration_timestamp": expires},
        }
        plan = [sent]
        read = graph.rng.random() < graph.read_share
        if not (read and graph.rng.random() < graph.skip_delivered_share):
            plan.append(status_object(message, "delivered", t0))
        if read:
            plan.append(status_object(message, "read", t0 + 1))
        plan[1] = {**plan[1], **billed}  # pricing rides on sent and the next one
    if graph.shuffle:
        graph.rng.shuffle(plan)
    plan += [dict(s) for s in plan if graph.rng.random() < graph.duplicate_share]
    return plan


def status_object(message: SentMessage, status: str, timestamp: int) -> JSON:
    obj: JSON = {
        "id": message.wamid,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": message.to,
    }
    if message.callback_data is not None:
        obj["biz_opaque_callback_data"] = message.callback_data
    return obj
