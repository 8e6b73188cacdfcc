"""The messenger's customer-service window: when free-form replies are allowed.

WhatsApp lets a business send free text to a person only within 24 hours of that
person's last message; outside it only an approved template may go out (the platform
answers with error 131047, which becomes ``TemplateRequiredError``). Checking the
window before sending tells an agent up front instead of after a failed send. Times
must carry a time zone: a naive datetime is ambiguous by up to a day across zones,
as wide as the window itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

SERVICE_WINDOW: Final = timedelta(hours=24)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def window_closes_at(
    last_inbound_at: datetime | None, length: timedelta = SERVICE_WINDOW
) -> datetime | None:
    """When the window closes, or None if the contact never wrote to us."""
    if length <= timedelta(0):
        raise ValueError(f"window length must be positive, got {length}")
    if last_inbound_at is None:
        return None
    _require_aware(last_inbound_at, "last_inbound_at")
    return last_inbound_at + length


def window_open(
    last_inbound_at: datetime | None, now: datetime, length: timedelta = SERVICE_WINDOW
) -> bool:
    """Whether free text may be sent at ``now``; closed from the closing instant on."""
    _require_aware(now, "now")
    closes = window_closes_at(last_inbound_at, length)
    return closes is not None and now < closes
