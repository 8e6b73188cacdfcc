"""Broadcast state signals: "broadcast B is now paused / cancelled / sending again".

A write that moves a broadcast's status (pause, cancel, resume, an automatic pause)
calls ``broadcast_moved`` in its transaction. Every dispatcher keeps the states it
has heard in a cache (``worker/broadcast_states.py``) and looks there before each
send, so a pause stops the sends that are already claimed without a query per send.

Signals travel two ways, both only once the transaction has committed:
- in this process: ``Database.write`` hands the marks to ``BroadcastSignals.publish``
  right after the commit, before the call that paused returns, which tells every
  registered callback synchronously (embedded mode: the dispatcher of the same
  process knows before the HTTP answer leaves);
- to other processes on PostgreSQL: ``NOTIFY rundfunk_broadcasts, '<id>:<status>'``,
  which PostgreSQL delivers on commit to every worker's listening connection
  (``worker/wakeup.py``).
A signal that is lost (a listener reconnecting, a web node on SQLite without
PostgreSQL's NOTIFY) is caught up by the cache's periodic re-read.

On SQLite a pause or cancel also tells this process's dispatchers *before* its
transaction (``BroadcastSignals.expect``, once the broadcast was read as the actor's
and sending):
on SQLite the write may wait for the file's lock behind the dispatcher's own writes
for a good part of a second at 1,000 msg/s, and no send should start meanwhile. An
expectation holds until the commit's signal (or ``EXPECT_SECONDS``, should the write
fail), and re-reads do not undo it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

BROADCAST_NOTIFY = "rundfunk_broadcasts"  # PostgreSQL NOTIFY, payload "<id>:<status>"
_MARK = "rundfunk_moved_broadcasts"


async def broadcast_moved(conn: AsyncConnection, broadcast_id: int, status: str) -> None:
    """Tell every dispatcher, once this transaction commits, that ``broadcast_id`` is
    now ``status``."""
    marked: dict[int, str] = conn.info.setdefault(_MARK, {})
    marked[broadcast_id] = status
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": BROADCAST_NOTIFY, "payload": f"{broadcast_id}:{status}"},
        )


def take_broadcast_marks(conn: AsyncConnection) -> dict[int, str]:
    """The broadcast moves marked on this connection since the last call (cleared)."""
    marks: dict[int, str] = conn.info.pop(_MARK, None) or {}
    return marks


def parse_payload(payload: str) -> tuple[int, str] | None:
    """``(id, status)`` from a NOTIFY payload, None for anything else."""
    raw_id, _, status = payload.partition(":")
    if not raw_id.isdigit() or not status:
        return None
    return int(raw_id), status


class BroadcastSignals:
    """The callbacks of this process that want to hear of committed broadcast moves."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[int, str], None]] = []
        self._expect_callbacks: list[Callable[[int, str], None]] = []

    def on_moved(self, callback: Callable[[int, str], None]) -> None:
        self._callbacks.append(callback)

    def on_expected(self, callback: Callable[[int, str], None]) -> None:
        self._expect_callbacks.append(callback)

    def expect(self, broadcast_id: int, status: str) -> None:
        """A transaction about to move ``broadcast_id`` to ``status`` (not yet committed)."""
        for callback in self._expect_callbacks:
            try:
                callback(broadcast_id, status)
            except Exception:
                log.exception("a broadcast state callback failed")

    def publish(self, moves: Mapping[int, str]) -> None:
        """Tell every callback (never raises: the commit has happened already)."""
        for broadcast_id, status in moves.items():
            for callback in self._callbacks:
                try:
                    callback(broadcast_id, status)
                except Exception:  # one broken watcher must not stop the others
                    log.exception("a broadcast state callback failed")
