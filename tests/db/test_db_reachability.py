"""Which errors are an outage (waited out by a live worker) and which a refused write."""

from __future__ import annotations

import sqlite3

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa

from rundfunk.db.reachability import unreachable


def _wrapped(error: Exception) -> Exception:
    """As SQLAlchemy raises it: its own error, caused by the driver's."""
    try:
        try:
            raise error
        except Exception as driver:
            raise sa.DBAPIError("UPDATE deliveries …", None, driver) from driver
    except sa.DBAPIError as outer:
        return outer


def test_a_database_that_is_down_restarting_or_gone_is_an_outage() -> None:
    for error in (
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        sa.OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
        sa.TimeoutError("QueuePool limit reached"),
    ):
        assert unreachable(error), error
        assert unreachable(_wrapped(error)), error


def test_a_write_refused_for_what_it_holds_is_not() -> None:
    for error in (
        asyncpg.StringDataRightTruncationError("value too long"),
        asyncpg.UniqueViolationError("duplicate key"),
        sqlite3.IntegrityError("value too long"),
        ValueError("a bug"),
    ):
        assert not unreachable(error), error
        assert not unreachable(_wrapped(error)), error
