"""WhatsApp Cloud API error codes, mapped into Rundfunk's one error tree.

Classified by ``error.code`` only, never by HTTP status or message text (the Graph API
answers most errors with 400, some rate limits with 429, and rewords messages). The
same mapping serves a send's error response and a ``failed`` status webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rundfunk.core import errors

# Seconds to wait before retrying a recipient after 131049 ("healthy ecosystem" cap):
# Meta asks for at least 24 hours.
MARKETING_CAP_RETRY_SECONDS = 24 * 3600.0
# Pair rate (131056): about one message per 6 s to the same person.
PAIR_RETRY_SECONDS = 6.0

_SENDER_RATE = frozenset({130429})
_PAIR_RATE = frozenset({131056})
_ACCOUNT_RATE = frozenset({4, 80007})
_TRANSIENT = frozenset({1, 2, 131000, 131016, 131057})
_TEMPLATE_REQUIRED = frozenset({131047})
_GONE = frozenset({131026})
_OPTED_OUT = frozenset({131050})
_MARKETING_CAP = frozenset({131049})
_PAUSE = frozenset({131048, 132015, 132016})
_DISABLE = frozenset({190, 368, 131031})


def error_for(code: int | None, message: str, *, details: str | None = None) -> errors.ChannelError:
    """The error class Rundfunk acts on for a Graph API error ``code``."""
    text = f"{message} ({details})" if details and details not in message else message
    label = str(code) if code is not None else None
    if code in _SENDER_RATE:
        return errors.RateLimitedError(text, code=label, scope=errors.RateScope.SENDER)
    if code in _PAIR_RATE:
        return errors.RateLimitedError(
            text, code=label, retry_after=PAIR_RETRY_SECONDS, scope=errors.RateScope.RECIPIENT
        )
    if code in _ACCOUNT_RATE:
        return errors.RateLimitedError(
            text, code=label, retry_after=60.0, scope=errors.RateScope.ACCOUNT
        )
    if code in _TRANSIENT:
        return errors.RetryableError(text, code=label)
    if code in _MARKETING_CAP:
        return errors.RetryableError(text, code=label, retry_after=MARKETING_CAP_RETRY_SECONDS)
    if code in _TEMPLATE_REQUIRED:
        return errors.TemplateRequiredError(text, code=label)
    if code in _GONE:
        # Undeliverable to this person (not on WhatsApp, old app): fail this send, but
        # keep the subscription; the platform may reach them another day.
        return errors.PermanentError(text, code=label)
    if code in _OPTED_OUT:
        return errors.OptedOutError(text, code=label)
    if code in _PAUSE:
        return errors.PauseBroadcastError(text, code=label)
    if code in _DISABLE:
        return errors.ChannelDisabledError(text, code=label)
    return errors.PermanentError(text, code=label)


def error_from_body(body: Any, *, http_status: int) -> errors.ChannelError:
    """Classify a Graph API error response (``{"error": {...}}``) by its code.

    A body without a usable error object falls back to the HTTP status: 5xx and 429
    are retried, anything else fails this send.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(error, Mapping) and isinstance(code, int) and not isinstance(code, bool):
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, Mapping) else None
        return error_for(
            code,
            str(error.get("message") or f"HTTP {http_status}"),
            details=str(details) if details else None,
        )
    # No usable code: the HTTP status is all there is to go by.
    said = error.get("message") if isinstance(error, Mapping) else None
    text = f"HTTP {http_status} from the Graph API" + (f": {said}" if said else "")
    if http_status == 429:
        return errors.RateLimitedError(text, code="http_429")
    if http_status >= 500:
        return errors.RetryableError(text, code="http_5xx")
    return errors.PermanentError(text, code=f"http_{http_status}")


def error_from_status(item: Mapping[str, Any]) -> errors.ChannelError | None:
    """The error of a ``failed`` status webhook entry (its first ``errors`` item)."""
    found = item.get("errors")
    if not isinstance(found, list) or not found or not isinstance(found[0], Mapping):
        return None
    first = found[0]
    code = first.get("code")
    data = first.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    # Meta's codes have at most six digits; a number past 32 bits is no code of theirs.
    known = isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2**31
    return error_for(
        code if known else None,
        str(first.get("title") or first.get("message") or "failed"),
        details=str(details) if details else None,
    )
