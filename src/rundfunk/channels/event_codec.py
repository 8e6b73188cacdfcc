"""Channel-neutral events as plain JSON and back (no I/O).

A webhook item that could not be applied is kept as JSON in the dead-letter list
(``services.dead_letters``) and carried out again from there on a retry; this is the
one place that knows how each event looks as JSON. A failed status's classified error
travels with it (its class by name from ``core.errors``), so a retried report is
handled exactly like the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any, Final

from rundfunk.channels.base import (
    ConsentUpdate,
    InboundEvent,
    InboundMessage,
    StatusUpdate,
    TemplateStatusUpdate,
)
from rundfunk.core import errors
from rundfunk.core.deliveries import DeliveryStatus

KINDS: Final[Mapping[type, str]] = {
    InboundMessage: "message",
    StatusUpdate: "status",
    ConsentUpdate: "consent",
    TemplateStatusUpdate: "template",
}
_ERRORS: Final[Mapping[str, type[errors.ChannelError]]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.ChannelError)
}


class UnreadableItem(ValueError):
    """Stored JSON that is no event this version knows."""


def kind_of(event: InboundEvent) -> str:
    return KINDS[type(event)]


def encode(event: InboundEvent) -> dict[str, Any]:
    """The event as JSON-ready values (times as ISO 8601 text)."""
    if isinstance(event, StatusUpdate):  # its error is an exception: written out by hand
        data = {f.name: _plain(getattr(event, f.name)) for f in fields(event) if f.name != "error"}
        data["error"] = _error(event.error)
        return data
    return {key: _plain(value) for key, value in asdict(event).items()}


def decode(kind: str, data: Mapping[str, Any]) -> InboundEvent:
    """The event ``encode`` made; ``UnreadableItem`` if the JSON is not one."""
    try:
        values = dict(data)
        values["timestamp"] = datetime.fromisoformat(str(values["timestamp"])).astimezone(UTC)
        if kind == "message":
            values["payload"] = dict(values.get("payload") or {})
            return InboundMessage(**values)
        if kind == "status":
            values["status"] = DeliveryStatus(values["status"])
            values["error"] = _error_back(values.get("error"))
            return StatusUpdate(**values)
        if kind == "consent":
            return ConsentUpdate(**values)
        if kind == "template":
            return TemplateStatusUpdate(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableItem(f"a stored {kind} item that cannot be read: {exc}") from None
    raise UnreadableItem(f"unknown item kind {kind!r}")


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, DeliveryStatus):
        return value.value
    return value


def _error(error: errors.ChannelError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    found: dict[str, Any] = {
        "class": type(error).__name__,
        "message": error.message,
        "code": error.code,
    }
    if isinstance(error, errors.RetryableError):
        found["retry_after"] = error.retry_after
    if isinstance(error, errors.RateLimitedError):
        found["scope"] = error.scope.value
    return found


def _error_back(found: object) -> errors.ChannelError | None:
    if not isinstance(found, Mapping):
        return None
    cls = _ERRORS.get(str(found.get("class")), errors.PermanentError)
    message, code = str(found.get("message") or "failed"), found.get("code")
    code = code if isinstance(code, str) else None
    if issubclass(cls, errors.RateLimitedError):
        return cls(
            message,
            code=code,
            retry_after=found.get("retry_after"),
            scope=errors.RateScope(found.get("scope") or errors.RateScope.SENDER.value),
        )
    if issubclass(cls, errors.RetryableError):
        return cls(message, code=code, retry_after=found.get("retry_after"))
    return cls(message, code=code)
