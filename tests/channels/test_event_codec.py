"""channels.event_codec: every event survives the trip to JSON and back, errors included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rundfunk.channels.base import (
    ConsentUpdate,
    InboundEvent,
    InboundMessage,
    StatusUpdate,
    TemplateStatusUpdate,
)
from rundfunk.channels.event_codec import UnreadableItem, decode, encode, kind_of
from rundfunk.core import errors
from rundfunk.core.deliveries import DeliveryStatus

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
EVENTS: list[InboundEvent] = [
    InboundMessage(
        address="4917",
        provider_message_id="wamid.1",
        timestamp=AT,
        kind="location",
        text="Marktplatz",
        name="Anna",
        payload={"latitude": 52.5, "context": {"id": "wamid.0"}},
    ),
    StatusUpdate(provider_message_id="wamid.2", status=DeliveryStatus.READ, timestamp=AT),
    ConsentUpdate(address="4917", opted_in=False, timestamp=AT, detail="stop"),
    TemplateStatusUpdate(name="news", language="de", status="PAUSED", timestamp=AT, reason="x"),
]
ERRORS: list[errors.ChannelError] = [
    errors.RateLimitedError("slow", code="130429", retry_after=3.0, scope=errors.RateScope.ACCOUNT),
    errors.RetryableError("cap", code="131049", retry_after=86400.0),
    errors.OptedOutError("stopped", code="131050"),
    errors.PauseBroadcastError("quality", code="132015"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_come_back_equal(event: InboundEvent) -> None:
    stored = json.loads(json.dumps(encode(event)))
    assert decode(kind_of(event), stored) == event


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_a_failed_status_keeps_its_classified_error(error: errors.ChannelError) -> None:
    status = StatusUpdate(
        provider_message_id="wamid.3",
        status=DeliveryStatus.FAILED,
        timestamp=AT,
        callback_data="d:7",
        error_code=error.code,
        error_reason=error.reason,
        error=error,
    )
    back = decode("status", json.loads(json.dumps(encode(status))))
    assert isinstance(back, StatusUpdate) and type(back.error) is type(error)
    assert vars(back.error) == vars(error)
    assert back.callback_data == "d:7" and back.error_reason == error.reason


def test_what_is_no_event_is_refused() -> None:
    with pytest.raises(UnreadableItem):
        decode("status", {"timestamp": AT.isoformat(), "status": "exploded"})
    with pytest.raises(UnreadableItem):
        decode("poll", {"timestamp": AT.isoformat()})
