"""Tests for the delivery status machine, retry backoff and the pause rule."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.deliveries import (
    TERMINAL,
    DeliveryStatus,
    advance,
    retry_delay,
    should_pause,
)

S = DeliveryStatus
QUEUED, SENDING, SENT, DELIVERED, READ, FAILED, SKIPPED = (
    S.QUEUED,
    S.SENDING,
    S.SENT,
    S.DELIVERED,
    S.READ,
    S.FAILED,
    S.SKIPPED,
)

# Every move that is allowed, written out by hand; every other pair must be ignored.
ALLOWED: dict[DeliveryStatus, set[DeliveryStatus]] = {
    QUEUED: {SENDING, SENT, DELIVERED, READ, FAILED, SKIPPED},
    SENDING: {SENT, DELIVERED, READ, FAILED, SKIPPED},
    SENT: {DELIVERED, READ, FAILED},
    DELIVERED: {READ},
    READ: set(),
    FAILED: {DELIVERED, READ},  # another device proved delivery
    SKIPPED: set(),
}


def test_status_values_are_the_stored_strings() -> None:
    assert [s.value for s in DeliveryStatus] == [
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "skipped",
    ]
    assert DeliveryStatus("read") is READ
    with pytest.raises(ValueError):
        DeliveryStatus("played")  # the caller maps "played" to READ


def test_terminal_states() -> None:
    assert frozenset({SENT, DELIVERED, READ, FAILED, SKIPPED}) == TERMINAL
    assert QUEUED not in TERMINAL
    assert SENDING not in TERMINAL


@pytest.mark.parametrize(("current", "incoming"), list(itertools.product(S, S)))
def test_advance_every_pair(current: DeliveryStatus, incoming: DeliveryStatus) -> None:
    expected = incoming if incoming in ALLOWED[current] else None
    assert advance(current, incoming) is expected


def test_named_edge_cases() -> None:
    assert advance(SENT, SENT) is None  # duplicate webhook
    assert advance(READ, DELIVERED) is None  # late "delivered" after "read"
    assert advance(DELIVERED, FAILED) is None  # late failure can't undo a receipt
    assert advance(READ, FAILED) is None
    assert advance(FAILED, SENT) is None  # failed is final for a mere "sent"
    assert advance(FAILED, DELIVERED) is DELIVERED  # multi-device: delivery wins
    assert advance(FAILED, READ) is READ
    assert advance(SKIPPED, READ) is None  # skipped is final
    assert advance(SENT, SKIPPED) is None  # too late to skip
    assert advance(SENDING, QUEUED) is None  # never backwards


RECEIPTS = st.lists(st.sampled_from([SENDING, SENT, DELIVERED, READ, FAILED]), max_size=8)
RANK = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, READ: 4}


def _apply(start: DeliveryStatus, updates: list[DeliveryStatus]) -> DeliveryStatus:
    status = start
    for incoming in updates:
        moved = advance(status, incoming)
        if moved is not None:
            assert moved is incoming  # advance only ever adopts the incoming status
            status = moved
    return status


@given(RECEIPTS, st.randoms(use_true_random=False))
def test_final_status_does_not_depend_on_arrival_order(
    updates: list[DeliveryStatus], rnd: random.Random
) -> None:
    shuffled = list(updates)
    rnd.shuffle(shuffled)
    assert _apply(QUEUED, updates) is _apply(QUEUED, shuffled)


@given(RECEIPTS)
def test_final_status_is_the_strongest_evidence(updates: list[DeliveryStatus]) -> None:
    final = _apply(QUEUED, updates)
    proofs = [u for u in updates if u in (DELIVERED, READ)]
    if proofs:
        assert final is max(proofs, key=RANK.__getitem__)
    elif FAILED in updates:
        assert final is FAILED
    else:
        assert final is max([QUEUED, *updates], key=RANK.__getitem__)


@given(st.sampled_from(list(S)), RECEIPTS)
def test_progress_never_goes_backwards(
    start: DeliveryStatus, updates: list[DeliveryStatus]
) -> None:
    status = start
    for incoming in updates:
        moved = advance(status, incoming)
        if moved is None:
            continue
        assert moved is not status
        if status in RANK and moved in RANK:
            assert RANK[moved] > RANK[status]
        if status in (DELIVERED, READ):
            assert moved is READ
        status = moved


# -- retry_delay ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.0, 1.0),  # step 2: half kept
        (1, 1.0, 2.0),
        (1, 0.5, 1.5),
        (2, 0.0, 2.0),  # step 4
        (3, 1.0, 8.0),  # step 8
        (8, 0.0, 128.0),  # step 256
        (9, 0.0, 150.0),  # step 512 capped at 300
        (9, 1.0, 300.0),
        (50, 0.25, 187.5),
        (10**6, 1.0, 300.0),  # huge attempt: capped, no OverflowError
    ],
)
def test_retry_delay_values(attempt: int, jitter: float, expected: float) -> None:
    assert retry_delay(attempt, jitter=jitter) == pytest.approx(expected)


def test_retry_delay_custom_base_and_cap() -> None:
    assert retry_delay(3, base=1.0, cap=10.0, jitter=0.0) == 2.0
    assert retry_delay(5, base=1.0, cap=10.0, jitter=1.0) == 10.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_retry_delay_attempt_counts_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(attempt, jitter=0.5)


@pytest.mark.parametrize("jitter", [-0.01, 1.01, math.nan])
def test_retry_delay_refuses_jitter_outside_unit_interval(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        retry_delay(1, jitter=jitter)


@pytest.mark.parametrize(
    ("base", "cap"), [(0.0, 300.0), (-1.0, 300.0), (2.0, 0.0), (math.inf, 1.0)]
)
def test_retry_delay_refuses_bad_base_or_cap(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base and cap"):
        retry_delay(1, base=base, cap=cap, jitter=0.5)


@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.01, max_value=60.0),
    st.floats(min_value=0.01, max_value=3600.0),
)
def test_retry_delay_properties(attempt: int, jitter: float, base: float, cap: float) -> None:
    delay = retry_delay(attempt, base=base, cap=cap, jitter=jitter)
    step = min(cap, base * 2.0 ** min(attempt - 1, 1023))
    assert step / 2 - 1e-9 <= delay <= step + 1e-9  # never immediate, never above the step
    assert delay <= cap + 1e-9
    # More attempts never wait less, for the same jitter.
    assert retry_delay(attempt + 1, base=base, cap=cap, jitter=jitter) >= delay
    # More jitter never waits less, for the same attempt.
    assert retry_delay(attempt, base=base, cap=cap, jitter=1.0) >= delay


# -- should_pause --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "attempted", "threshold", "min_sample", "expected"),
    [
        (2, 2, 0.1, 50, False),  # 100 % of too few
        (10, 49, 0.1, 50, False),
        (6, 50, 0.1, 50, True),  # 12 % of enough
        (5, 50, 0.1, 50, False),  # exactly at the threshold: not above it
        (0, 1000, 0.0, 50, False),
        (1, 1000, 0.0, 50, True),
        (0, 0, 0.1, 0, False),  # nothing attempted: nothing to judge
        (1, 1, 0.5, 0, True),
        (1000, 1000, 1.0, 1, False),  # a threshold of 1 never pauses
    ],
)
def test_should_pause(
    failed: int, attempted: int, threshold: float, min_sample: int, expected: bool
) -> None:
    assert (
        should_pause(failed=failed, attempted=attempted, threshold=threshold, min_sample=min_sample)
        is expected
    )


@pytest.mark.parametrize(("failed", "attempted"), [(-1, 5), (1, -1), (6, 5)])
def test_should_pause_refuses_impossible_counts(failed: int, attempted: int) -> None:
    with pytest.raises(ValueError):
        should_pause(failed=failed, attempted=attempted, threshold=0.1, min_sample=1)


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=500),
)
def test_should_pause_matches_its_definition(
    a: int, b: int, threshold: float, min_sample: int
) -> None:
    failed, attempted = min(a, b), max(a, b)
    expected = attempted >= min_sample and attempted > 0 and failed / attempted > threshold
    got = should_pause(
        failed=failed, attempted=attempted, threshold=threshold, min_sample=min_sample
    )
    if attempted and abs(failed / attempted - threshold) < 1e-12:
        return  # division and multiplication may round differently exactly at the edge
    assert got is expected
