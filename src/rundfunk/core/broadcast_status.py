"""The life of a broadcast: its states, the moves between them, and how it ends.

draft → scheduled → sending → done | failed, with paused (and back to sending) and
cancelled from anywhere not finished; a scheduled broadcast the review refuses at its
time is failed without a send. A broadcast ends ``failed`` when none of its
deliveries reached the platform and at least one failed: every copy was refused
(a text that cannot be personalized, a template the platform rejects), which a green
"done" would hide. A late receipt proving one copy arrived makes it ``done``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"  # nothing left to send, and some copy went out (or nobody was left)
    FAILED = "failed"  # nothing left to send, and every copy that was tried failed
    CANCELLED = "cancelled"


S = BroadcastStatus
TRANSITIONS: Final[dict[BroadcastStatus, frozenset[BroadcastStatus]]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.SENDING, S.CANCELLED}),
    # Failed without a send: the review refused it at its time (it cannot be edited).
    S.SCHEDULED: frozenset({S.SENDING, S.FAILED, S.CANCELLED}),
    S.SENDING: frozenset({S.PAUSED, S.DONE, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.SENDING, S.CANCELLED}),
    # A delivery that goes back to the queue (a retry tomorrow) reopens a finished
    # broadcast; a late receipt turns a failed one done.
    S.DONE: frozenset({S.SENDING}),
    S.FAILED: frozenset({S.SENDING, S.DONE}),
    S.CANCELLED: frozenset(),
}
FINISHED: Final = frozenset({S.DONE, S.FAILED, S.CANCELLED})


def can_move(current: BroadcastStatus, target: BroadcastStatus) -> bool:
    return target in TRANSITIONS[current]


def finished_as(*, accepted: int, failed: int) -> BroadcastStatus:
    """How a broadcast with nothing left to send ends: ``accepted`` copies reached the
    platform (sent, delivered or read), ``failed`` did not (skipped ones count as neither).
    """
    return S.FAILED if failed > 0 and accepted == 0 else S.DONE
