"""Tests for the GCRA math: the rate value, slot reservation and slowing down."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.ratelimit import Rate, reserve, slow_down


def test_rate_interval_and_defaults() -> None:
    assert Rate(80).burst == 1
    assert Rate(80).interval == pytest.approx(1 / 80)
    assert Rate(0.5, 3).interval == 2.0
    assert Rate(1000.0, 20) == Rate(1000, 20)


@pytest.mark.parametrize(
    ("per_second", "burst"),
    [
        (0, 1),
        (-1.0, 1),
        (math.inf, 1),
        (math.nan, 1),
        (1.0, 0),
        (1.0, -3),
        (1.0, 1.5),
        (1.0, True),
        ("10", 1),
    ],
)
def test_rate_refuses_nonsense(per_second: object, burst: object) -> None:
    with pytest.raises(ValueError):
        Rate(per_second, burst)  # type: ignore[arg-type]


def _schedule(arrivals: list[float], rate: Rate, tat: float | None = None) -> list[float]:
    """Send times for requests arriving at ``arrivals``, as the limiter would schedule them."""
    sends = []
    tat = arrivals[0] if tat is None else tat
    for now in arrivals:
        tat, wait = reserve(tat, now, rate)
        assert wait >= 0
        sends.append(now + wait)
    return sends


def test_first_request_goes_at_once_then_one_per_interval() -> None:
    assert _schedule([0.0] * 4, Rate(2)) == [0.0, 0.5, 1.0, 1.5]


def test_burst_goes_at_once_then_spacing_resumes() -> None:
    assert _schedule([10.0] * 6, Rate(1, burst=3)) == [10.0, 10.0, 10.0, 11.0, 12.0, 13.0]


def test_reserve_returns_the_next_tat() -> None:
    assert reserve(0.0, 0.0, Rate(4)) == (0.25, 0.0)
    assert reserve(5.0, 4.0, Rate(1)) == (6.0, 1.0)  # one slot booked ahead: wait for it
    assert reserve(5.0, 4.0, Rate(1, burst=2)) == (6.0, 0.0)  # within the burst tolerance


def test_idle_sender_does_not_bank_more_than_the_burst() -> None:
    # After a long pause the stale TAT lies in the past; only the burst is free again.
    rate = Rate(1, burst=2)
    tat, _ = reserve(0.0, 0.0, rate)
    sends = _schedule([1000.0] * 4, rate, tat=tat)
    assert sends == [1000.0, 1000.0, 1001.0, 1002.0]


@given(
    rate=st.builds(
        Rate,
        st.floats(min_value=0.5, max_value=2000.0),
        st.integers(min_value=1, max_value=50),
    ),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=300),
    window=st.floats(min_value=0.001, max_value=5.0),
)
def test_no_window_holds_more_than_burst_plus_rate(
    rate: Rate, gaps: list[float], window: float
) -> None:
    arrivals = [0.0]
    for gap in gaps:
        arrivals.append(arrivals[-1] + gap)
    sends = _schedule(arrivals, rate)
    assert sends == sorted(sends)  # callers are served in the order they asked
    limit = rate.burst + window * rate.per_second + 1e-6
    for start in sends:
        inside = bisect.bisect_left(sends, start + window) - bisect.bisect_left(sends, start)
        assert inside <= limit


@given(
    per_second=st.floats(min_value=1.0, max_value=5000.0),
    burst=st.integers(min_value=1, max_value=10),
    overload=st.floats(min_value=1.0, max_value=20.0),
)
def test_steady_overload_is_held_to_the_rate(
    per_second: float, burst: int, overload: float
) -> None:
    rate = Rate(per_second, burst)
    n = 2000
    arrivals = [i / (per_second * overload) for i in range(n)]
    sends = _schedule(arrivals, rate)
    mean = (n - 1) / (sends[-1] - sends[0])
    assert mean == pytest.approx(per_second, rel=0.01)


@given(
    per_second=st.floats(min_value=1.0, max_value=5000.0),
    burst=st.integers(min_value=1, max_value=10),
    share=st.floats(min_value=0.05, max_value=1.0),
)
def test_demand_below_the_rate_never_waits(per_second: float, burst: int, share: float) -> None:
    rate = Rate(per_second, burst)
    arrivals = [i / (per_second * share) for i in range(500)]
    tat = arrivals[0]
    for now in arrivals:
        tat, wait = reserve(tat, now, rate)
        assert wait == pytest.approx(0.0, abs=1e-9)


def test_slow_down_halves_rate_and_burst() -> None:
    assert slow_down(Rate(80, 20)) == Rate(40, 10)
    assert slow_down(Rate(1000, 1)) == Rate(500, 1)
    assert slow_down(Rate(100, 10), factor=0.25) == Rate(25, 2)
    assert slow_down(Rate(100, 10), factor=1.0) == Rate(100, 10)


def test_slow_down_stops_at_the_floor_but_never_speeds_up() -> None:
    assert slow_down(Rate(1.5)) == Rate(1.0)
    assert slow_down(Rate(1.0)) == Rate(1.0)
    assert slow_down(Rate(0.2)) == Rate(0.2)  # already below the floor: unchanged
    assert slow_down(Rate(10), floor=8) == Rate(8)


@given(
    st.floats(min_value=0.01, max_value=10_000),
    st.integers(min_value=1, max_value=100),
    st.floats(min_value=0.01, max_value=1.0),
    st.floats(min_value=0.01, max_value=100),
)
def test_slow_down_is_never_faster(
    per_second: float, burst: int, factor: float, floor: float
) -> None:
    before = Rate(per_second, burst)
    after = slow_down(before, factor, floor)
    assert after.per_second <= before.per_second
    assert 1 <= after.burst <= before.burst
    assert after.per_second >= min(floor, before.per_second)


@pytest.mark.parametrize(("factor", "floor"), [(0.0, 1.0), (1.5, 1.0), (-0.5, 1.0), (0.5, 0.0)])
def test_slow_down_refuses_nonsense(factor: float, floor: float) -> None:
    with pytest.raises(ValueError):
        slow_down(Rate(10), factor, floor)
