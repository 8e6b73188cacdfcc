"""Which errors mean the database cannot be reached now, rather than that a write is wrong.

A worker keeps the writes it must not lose and tries them again (``worker.kept_writes``)
for as long as the database is down or restarting: the connection refused or lost,
PostgreSQL starting up or shutting down, a pool that timed out, SQLite busy. Any other
error (a value the column cannot hold, a constraint, a bug) fails the same way every
time, and trying it forever would stop the worker for good.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # no stubs
from sqlalchemy import exc as sa

_ASYNCPG = (
    asyncpg.PostgresConnectionError,  # connection lost, refused, closed mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # starting up, shutting down, terminated
    asyncpg.InterfaceError,  # the connection is closed or in a broken state
)


def unreachable(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) says the database is not reachable now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError | sa.TimeoutError | sa.OperationalError):
            return True  # (OperationalError: a disconnect; on SQLite also "database is locked")
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa.InterfaceError, sa.DisconnectionError, *_ASYNCPG)):
            return True
        current = current.__cause__ or current.__context__
    return False
