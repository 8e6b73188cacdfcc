"""Tests for the 24-hour customer-service window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.window import SERVICE_WINDOW, window_closes_at, window_open

LAST = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=1))


def test_service_window_is_24_hours() -> None:
    assert timedelta(hours=24) == SERVICE_WINDOW


def test_closes_24_hours_after_the_last_inbound_message() -> None:
    assert window_closes_at(LAST) == datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
    assert window_closes_at(LAST, timedelta(hours=1)) == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)


def test_never_wrote_means_no_window() -> None:
    assert window_closes_at(None) is None
    assert window_open(None, LAST) is False


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (LAST, True),
        (LAST + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999), True),
        (LAST + SERVICE_WINDOW, False),  # exactly at the close: closed
        (LAST + SERVICE_WINDOW + timedelta(microseconds=1), False),
        (LAST + timedelta(days=30), False),
        (LAST - timedelta(minutes=5), True),  # our clock behind the platform's: still open
    ],
)
def test_window_open(now: datetime, expected: bool) -> None:
    assert window_open(LAST, now) is expected


def test_time_zones_are_compared_as_instants() -> None:
    last_berlin = LAST.astimezone(BERLIN)  # 13:00 +01:00, the same instant
    assert window_closes_at(last_berlin) == LAST + SERVICE_WINDOW
    assert window_open(last_berlin, datetime(2025, 3, 2, 12, 59, tzinfo=BERLIN)) is True
    assert window_open(last_berlin, datetime(2025, 3, 2, 13, 0, tzinfo=BERLIN)) is False
    assert window_open(LAST, datetime(2025, 3, 2, 11, 59, tzinfo=UTC)) is True


def test_custom_length() -> None:
    assert window_open(LAST, LAST + timedelta(hours=30), timedelta(days=7)) is True
    assert window_open(LAST, LAST + timedelta(hours=2), timedelta(hours=2)) is False


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="last_inbound_at must be timezone-aware"):
        window_closes_at(naive)
    with pytest.raises(ValueError, match="last_inbound_at must be timezone-aware"):
        window_open(naive, LAST)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        window_open(LAST, naive)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        window_open(None, naive)


@pytest.mark.parametrize("length", [timedelta(0), timedelta(hours=-1)])
def test_length_must_be_positive(length: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        window_closes_at(LAST, length)


OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


@given(
    st.datetimes(timezones=OFFSETS),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=7)),
    OFFSETS,
)
def test_open_exactly_while_less_than_length_has_passed(
    last: datetime, elapsed: timedelta, length: timedelta, now_zone: timezone
) -> None:
    now = (last + elapsed).astimezone(now_zone)
    assert window_open(last, now, length) is (elapsed < length)
    closes = window_closes_at(last, length)
    assert closes is not None
    assert closes - last == length
