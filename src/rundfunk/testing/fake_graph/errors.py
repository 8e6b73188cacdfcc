"""Graph API error answers: the titles by code, ``GraphError`` and the token check."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

# Default titles, used as "(#code) title" in error answers and status errors.
ERROR_TITLES: dict[int, str] = {
    1: "An unknown error has occurred",
    2: "Service temporarily unavailable",
    4: "Application request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    368: "Temporarily blocked for policies violations",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131016: "Service unavailable",
    131026: "Message undeliverable",
    131031: "Business Account locked",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement",
    131050: "Unable to deliver the message: the recipient stopped marketing messages",
    131051: "Unsupported message type",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132012: "Parameter format does not match format in the created template",
    132015: "Template is Paused",
    132016: "Template is Disabled",
}

UNKNOWN_NODE = (
    "Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded "
    "due to missing permissions, or does not support this operation"
)


class GraphError(Exception):
    """One Graph API error answer: ``error.code``, its details and the HTTP status."""

    def __init__(
        self,
        code: int,
        details: str = "",
        *,
        message: str | None = None,
        http_status: int = 400,
        error_type: str = "OAuthException",
    ) -> None:
        self.code = code
        self.details = details
        self.message = message or f"(#{code}) {ERROR_TITLES.get(code, 'Unknown error')}"
        self.http_status = http_status
        self.error_type = error_type
        super().__init__(self.message)

    def body(self) -> JSON:
        error: JSON = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.details:  # absent on token errors (190) and unknown nodes, like Graph's
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}


def bad(details: str) -> GraphError:
    """An invalid-parameter error (100) with ``details``."""
    return GraphError(100, details)


def check_token(request: web.Request, access_token: str) -> None:
    """The bearer token (or ``access_token`` query parameter) must be ``access_token``."""
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.query.get("access_token")
    if token is None or not hmac.compare_digest(token, access_token):
        raise GraphError(190, http_status=401)
