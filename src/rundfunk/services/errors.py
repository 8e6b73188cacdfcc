"""Errors a use case raises for its caller to turn into a 4xx (web) or a message (CLI)."""

from __future__ import annotations


class ServiceError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The input that caused it, when there is one: forms show the message next to it.
        self.field = field


class NotFound(ServiceError):
    """Missing, or belongs to another workspace: both look the same from outside."""

    code = "not_found"


class Invalid(ServiceError):
    """The request is well-formed but not acceptable ("audience is empty")."""

    code = "invalid"


class Conflict(ServiceError):
    """The state forbids it now ("broadcast is already done") or a duplicate key."""

    code = "conflict"


class Forbidden(ServiceError):
    """The caller's role may not do this."""

    code = "forbidden"


class Upstream(ServiceError):
    """The messenger platform refused or failed a request made on the caller's behalf."""

    code = "platform_error"


class Throttled(ServiceError):
    """Too many failed attempts: try again later."""

    code = "throttled"
