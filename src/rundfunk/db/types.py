"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    SQLite has no time zones, so values are stored as naive UTC everywhere; that keeps
    string comparison on SQLite and timestamp comparison on PostgreSQL equivalent.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL paths on SQLite hand back text
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Ids and foreign keys: 64-bit on PostgreSQL (deliveries pass 2^31 rows at internet
# scale), plain INTEGER on SQLite, where only ``INTEGER PRIMARY KEY`` is the rowid alias
# that numbers new rows (a BIGINT primary key there would not autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The largest id any column holds; the API bounds every id it accepts to this.
MAX_ID = 2**63 - 1
