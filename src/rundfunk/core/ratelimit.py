"""GCRA rate-limit math: reserve the next send slot for one sender, without timers.

The Generic Cell Rate Algorithm keeps one number per sender, the theoretical arrival
time (TAT) of the next send. Each reservation pushes it one interval on and tells the
caller how long to sleep first, so it behaves like a token bucket of ``burst`` tokens
refilled at ``per_second`` but needs no refill timer and no lock beyond updating that
one number — which is why it can live in process memory, a Redis key or a database
row alike. Fixed windows let a whole second's quota out in its first milliseconds;
GCRA spaces sends evenly after the burst.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most ``per_second`` sends per second on average, ``burst`` of them at once."""

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.per_second, int | float) and not isinstance(self.per_second, bool)):
            raise ValueError(f"per_second must be a number, got {self.per_second!r}")
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError(f"per_second must be positive and finite, got {self.per_second}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be a whole number of at least 1, got {self.burst!r}")

    @property
    def interval(self) -> float:
        """Seconds between two sends at the steady rate."""
        return 1.0 / self.per_second


def reserve(tat: float, now: float, rate: Rate) -> tuple[float, float]:
    """Reserve one send: returns ``(new_tat, wait_seconds)``; send after sleeping the wait.

    ``tat`` is the value stored from the previous call (pass ``now`` for a sender never
    seen). The reservation is taken even when the caller must wait, so concurrent
    callers queue up behind each other in order instead of all retrying at once.
    """
    tat = max(tat, now)  # an idle sender doesn't bank unused slots beyond the burst
    tolerance = (rate.burst - 1) * rate.interval
    wait = max(0.0, tat - now - tolerance)
    return tat + rate.interval, wait


def slow_down(rate: Rate, factor: float = 0.5, floor: float = 1.0) -> Rate:
    """A slower rate for when the platform says we are too fast (HTTP 429, 130429).

    Both the rate and the burst shrink: a rejected burst is as likely the cause as the
    average. ``floor`` keeps repeated slow-downs from grinding to a halt, but never
    raises a rate that is already below it.
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    if not floor > 0:
        raise ValueError(f"floor must be positive, got {floor}")
    per_second = max(rate.per_second * factor, min(floor, rate.per_second))
    burst = max(1, math.floor(rate.burst * factor))
    return Rate(per_second, burst)
