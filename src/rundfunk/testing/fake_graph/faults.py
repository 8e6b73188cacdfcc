"""Send faults: injected Graph errors, the pair rate limit and the throughput limiter."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from .errors import ERROR_TITLES, GraphError


@dataclass(frozen=True)
class Injection:
    """Answer ``share`` of the send requests with Graph error ``code``."""

    code: int
    share: float
    http_status: int = 400
    message: str | None = None


def roll_injections(rng: random.Random, injections: list[Injection]) -> None:
    """One roll; raises the error of the rule it falls in (shares add up, in order)."""
    roll, threshold = rng.random(), 0.0
    for rule in injections:
        threshold += rule.share
        if roll < threshold:
            raise GraphError(
                rule.code,
                ERROR_TITLES.get(rule.code, "Injected error"),
                message=rule.message,
                http_status=rule.http_status,
            )


class SendLimits:
    """The pair rate limit and the throughput limiter; only accepted sends count."""

    def __init__(self) -> None:
        self.tat = 0.0  # the limiter's theoretical arrival time (monotonic)
        self.last_to: dict[str, float] = {}  # last accepted send per wa_id (monotonic)

    def check(
        self, wa_id: str, *, pair_limit_seconds: float | None, throughput_limit: float | None
    ) -> None:
        """Raise 131056 (pair) or 130429 (throughput), else take the send's slot."""
        now = time.monotonic()
        if pair_limit_seconds is not None:
            last = self.last_to.get(wa_id)
            if last is not None and now - last < pair_limit_seconds:
                raise GraphError(
                    131056,
                    "Message failed to send because there were too many "
                    "messages sent from this phone number to the same phone number "
                    "in a short period of time.",
                )
        if throughput_limit is not None:
            # GCRA: a burst of one second's worth, then the steady rate. Only
            # accepted sends take a slot, so a client that backs off gets through.
            interval = 1.0 / throughput_limit
            tolerance = (max(1.0, throughput_limit) - 1.0) * interval
            tat = max(self.tat, now)
            if tat - now > tolerance + 1e-9:
                raise GraphError(130429, "Cloud API message throughput has been reached.")
            self.tat = tat + interval
        self.last_to[wa_id] = now
