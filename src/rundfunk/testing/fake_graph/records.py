"""What the fake records of each accepted send."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import JSON


@dataclass(frozen=True)
class SentMessage:
    """One accepted send: the wamid we answered, the recipient's wa_id, the raw payload."""

    wamid: str
    to: str
    payload: JSON
    at: float
    callback_data: str | None

    @property
    def type(self) -> str:
        return str(self.payload.get("type", "text"))
