"""The life of one outbound message: its status machine, retry backoff and pause rule.

Statuses for broadcast deliveries and for outbound conversation messages move forward
only. Platforms send receipts late, twice and out of order (a "read" can arrive before
its "delivered"; a second device can report "delivered" after the first reported
"failed"), so ``advance`` decides for every incoming status whether it moves the
message on or must be ignored. ``retry_delay`` and ``should_pause`` are the two
numbers the dispatcher needs after a failed send.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # waiting for the dispatcher
    SENDING = "sending"  # claimed under a lease; the request may be in flight
    SENT = "sent"  # the platform accepted it
    DELIVERED = "delivered"  # it reached the recipient's device
    READ = "read"  # the recipient opened it ("played" for voice maps here)
    FAILED = "failed"  # it will not arrive; the reason is stored with the row
    SKIPPED = "skipped"  # never sent, on purpose (unsubscribed before its turn)


# Where no further send happens for this row.
TERMINAL: Final[frozenset[DeliveryStatus]] = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    }
)

_PROGRESS: Final[dict[DeliveryStatus, int]] = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}

# A receipt saying the message reached a device outranks an earlier failure: with
# several linked devices one can fail while another delivers.
_PROOF_OF_DELIVERY: Final = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.READ})


def advance(current: DeliveryStatus, incoming: DeliveryStatus) -> DeliveryStatus | None:
    """The status after ``incoming`` arrives, or None when it must be ignored."""
    if incoming is current or current is DeliveryStatus.SKIPPED:
        return None
    if current is DeliveryStatus.FAILED:
        return incoming if incoming in _PROOF_OF_DELIVERY else None
    if incoming is DeliveryStatus.FAILED:
        # A late failure cannot undo a receipt we already hold.
        return None if current in _PROOF_OF_DELIVERY else incoming
    if incoming is DeliveryStatus.SKIPPED:
        # Skipping means "never sent": too late once the platform has the message.
        return incoming if _PROGRESS[current] < _PROGRESS[DeliveryStatus.SENT] else None
    return incoming if _PROGRESS[incoming] > _PROGRESS[current] else None


def retry_delay(attempt: int, *, base: float = 2.0, cap: float = 300.0, jitter: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    "Equal jitter": half of the capped exponential step is kept, the other half is
    spread by ``jitter`` (a caller-supplied random number in [0, 1], which keeps this
    function pure). Keeping half means a retry never fires immediately, while the
    spread stops thousands of deliveries that failed together from retrying together.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1], got {jitter}")
    if not (base > 0 and math.isfinite(base)) or not (cap > 0 and math.isfinite(cap)):
        raise ValueError(f"base and cap must be positive and finite, got {base} and {cap}")
    # Bound the exponent so attempt 5000 overflows to inf (then capped), not OverflowError.
    step = min(cap, base * 2.0 ** min(attempt - 1, 1023))
    half = step / 2
    return half + jitter * half


def should_pause(*, failed: int, attempted: int, threshold: float, min_sample: int) -> bool:
    """Whether a broadcast failing this often should stop before it harms the sender.

    Nothing is decided on fewer than ``min_sample`` attempts, so the first two failures
    of a big broadcast (100 % of 2) don't pause it.
    """
    if failed < 0 or attempted < 0 or failed > attempted:
        raise ValueError(f"need 0 <= failed <= attempted, got {failed} of {attempted}")
    if attempted == 0 or attempted < min_sample:
        return False
    # Multiplying avoids float division and reads as "more than threshold of them".
    return failed > threshold * attempted
