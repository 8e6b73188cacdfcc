"""Tests for mapping WhatsApp Cloud API error codes into Rundfunk's error tree.

The table follows CHANNELS.md ("code | meaning | what to do") row by row.
"""

from __future__ import annotations

from typing import Any

import pytest

from rundfunk.channels.whatsapp.errors import error_for, error_from_body, error_from_status
from rundfunk.core.errors import (
    ChannelDisabledError,
    ChannelError,
    OptedOutError,
    PauseBroadcastError,
    PermanentError,
    RateLimitedError,
    RateScope,
    RecipientGoneError,
    RetryableError,
    TemplateRequiredError,
)

DAY = 24 * 3600

# (code, the exact class, rate scope if rate-limited)
TABLE: list[tuple[int, type[ChannelError], RateScope | None]] = [
    (130429, RateLimitedError, RateScope.SENDER),
    (131056, RateLimitedError, RateScope.RECIPIENT),
    (4, RateLimitedError, RateScope.ACCOUNT),
    (80007, RateLimitedError, RateScope.ACCOUNT),
    (1, RetryableError, None),
    (2, RetryableError, None),
    (131000, RetryableError, None),
    (131016, RetryableError, None),
    (131057, RetryableError, None),
    (131047, TemplateRequiredError, None),
    (131026, PermanentError, None),
    (131050, OptedOutError, None),
    (131049, RetryableError, None),
    (131048, PauseBroadcastError, None),
    (131051, PermanentError, None),
    (100, PermanentError, None),
    (132000, PermanentError, None),
    (132001, PermanentError, None),
    (132015, PauseBroadcastError, None),
    (132016, PauseBroadcastError, None),
    (190, ChannelDisabledError, None),
    (368, ChannelDisabledError, None),
    (131031, ChannelDisabledError, None),
    (999999, PermanentError, None),  # unknown code: fail this send, do not loop
]


def graph_error(code: Any, message: str = "(#x) something", details: str | None = None) -> Any:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


@pytest.mark.parametrize(("code", "cls", "scope"), TABLE, ids=[str(row[0]) for row in TABLE])
def test_error_for_every_documented_code(
    code: int, cls: type[ChannelError], scope: RateScope | None
) -> None:
    error = error_for(code, "boom")
    assert type(error) is cls
    assert error.code == str(code)
    assert error.message == "boom"
    if scope is not None:
        assert isinstance(error, RateLimitedError)
        assert error.scope is scope


@pytest.mark.parametrize(("code", "cls", "scope"), TABLE, ids=[str(row[0]) for row in TABLE])
def test_error_from_body_classifies_every_documented_code(
    code: int, cls: type[ChannelError], scope: RateScope | None
) -> None:
    error = error_from_body(graph_error(code, f"(#{code}) text"), http_status=400)
    assert type(error) is cls
    assert error.code == str(code)
    if scope is not None:
        assert isinstance(error, RateLimitedError)
        assert error.scope is scope


@pytest.mark.parametrize(("code", "cls", "scope"), TABLE, ids=[str(row[0]) for row in TABLE])
def test_error_from_status_classifies_every_documented_code(
    code: int, cls: type[ChannelError], scope: RateScope | None
) -> None:
    error = error_from_status({"id": "wamid.X", "status": "failed", "errors": [{"code": code}]})
    assert error is not None
    assert type(error) is cls
    assert error.code == str(code)
    if scope is not None:
        assert isinstance(error, RateLimitedError)
        assert error.scope is scope


def test_pair_rate_limit_retries_that_recipient_later() -> None:
    error = error_for(131056, "pair rate")
    assert isinstance(error, RateLimitedError)
    assert error.scope is RateScope.RECIPIENT
    assert error.retry_after is not None
    assert error.retry_after > 0


def test_account_rate_limit_has_a_retry_after() -> None:
    for code in (4, 80007):
        error = error_for(code, "account")
        assert isinstance(error, RateLimitedError)
        assert error.retry_after is not None
        assert error.retry_after > 0


@pytest.mark.parametrize("code", [1, 2, 131000, 131016, 131057])
def test_transient_codes_are_retryable_but_not_rate_limits(code: int) -> None:
    error = error_for(code, "unavailable")
    assert isinstance(error, RetryableError)
    assert not isinstance(error, RateLimitedError)
    assert not isinstance(error, PermanentError)


def test_marketing_cap_waits_at_least_a_day() -> None:
    error = error_for(131049, "healthy ecosystem")
    assert type(error) is RetryableError
    assert error.retry_after is not None
    assert error.retry_after >= DAY


def test_undeliverable_is_permanent_but_does_not_unsubscribe() -> None:
    error = error_for(131026, "undeliverable")
    assert isinstance(error, PermanentError)
    assert not isinstance(error, RecipientGoneError)
    assert not isinstance(error, OptedOutError)


def test_template_required_and_opt_out_are_permanent() -> None:
    assert isinstance(error_for(131047, "x"), PermanentError)
    assert isinstance(error_for(131050, "x"), PermanentError)


@pytest.mark.parametrize("code", [131048, 132015, 132016, 190, 368, 131031])
def test_pause_and_disable_are_neither_retryable_nor_permanent(code: int) -> None:
    error = error_for(code, "x")
    assert not isinstance(error, RetryableError)
    assert not isinstance(error, PermanentError)


def test_error_for_without_a_code() -> None:
    error = error_for(None, "no code")
    assert type(error) is PermanentError
    assert error.code is None


# --- error_from_body ---------------------------------------------------------------


def test_error_from_body_with_the_documented_error_json() -> None:
    body = {
        "error": {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException",
            "code": 131056,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because there were too many messages "
                "sent from this phone number to the same phone number in a short period.",
            },
            "fbtrace_id": "A1b2C3d4E5",
        }
    }
    error = error_from_body(body, http_status=400)
    assert isinstance(error, RateLimitedError)
    assert error.scope is RateScope.RECIPIENT
    assert error.code == "131056"
    assert error.message == (
        "(#131056) (Business Account, Consumer Account) pair rate limit hit "
        "(Message failed to send because there were too many messages sent from this "
        "phone number to the same phone number in a short period.)"
    )
    assert error.reason == f"131056: {error.message}"


def test_details_already_in_the_message_are_not_repeated() -> None:
    error = error_from_body(
        graph_error(131026, "(#131026) Message undeliverable", details="Message undeliverable"),
        http_status=400,
    )
    assert error.message == "(#131026) Message undeliverable"


def test_message_missing_falls_back_to_the_http_status() -> None:
    error = error_from_body({"error": {"code": 131026}}, http_status=400)
    assert error.message == "HTTP 400"
    assert error.code == "131026"


@pytest.mark.parametrize("status", [400, 429, 200, 503])
def test_sender_rate_limit_regardless_of_http_status(status: int) -> None:
    error = error_from_body(graph_error(130429), http_status=status)
    assert type(error) is RateLimitedError
    assert error.scope is RateScope.SENDER
    assert error.code == "130429"


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_undeliverable_stays_permanent_regardless_of_http_status(status: int) -> None:
    error = error_from_body(graph_error(131026), http_status=status)
    assert type(error) is PermanentError
    assert error.code == "131026"


def test_token_error_disables_the_channel_even_with_http_500() -> None:
    assert type(error_from_body(graph_error(190), http_status=500)) is ChannelDisabledError


@pytest.mark.parametrize("body", [None, {}, "Bad Gateway", [], {"error": "text"}, {"ok": True}])
def test_body_without_error_object_falls_back_to_http_status(body: Any) -> None:
    limited = error_from_body(body, http_status=429)
    assert type(limited) is RateLimitedError
    assert limited.code == "http_429"

    unavailable = error_from_body(body, http_status=503)
    assert type(unavailable) is RetryableError
    assert unavailable.code == "http_5xx"
    assert type(error_from_body(body, http_status=500)) is RetryableError

    forbidden = error_from_body(body, http_status=403)
    assert type(forbidden) is PermanentError
    assert forbidden.code == "http_403"
    assert type(error_from_body(body, http_status=400)) is PermanentError


def test_bool_code_is_not_treated_as_code_1() -> None:
    error = error_from_body(graph_error(True), http_status=400)
    assert not isinstance(error, RetryableError)
    assert type(error) is PermanentError
    assert error.code == "http_400"  # judged by the HTTP status, as without a code


def test_error_without_code_falls_back_to_the_http_status() -> None:
    body = {"error": {"message": "Service unavailable", "type": "OAuthException"}}
    unavailable = error_from_body(body, http_status=503)
    assert type(unavailable) is RetryableError
    assert "Service unavailable" in unavailable.reason


# --- error_from_status -------------------------------------------------------------


def test_error_from_status_uses_the_first_error() -> None:
    status = {
        "id": "wamid.HBgL",
        "status": "failed",
        "timestamp": "1749416383",
        "recipient_id": "4915112345678",
        "errors": [
            {
                "code": 131050,
                "title": "Unable to deliver the message",
                "error_data": {"details": "user stopped marketing messages"},
            },
            {"code": 130429, "title": "second"},
        ],
    }
    error = error_from_status(status)
    assert type(error) is OptedOutError
    assert error.code == "131050"
    assert error.message == "Unable to deliver the message (user stopped marketing messages)"


def test_error_from_status_title_falls_back_to_message_then_failed() -> None:
    with_message = error_from_status({"errors": [{"code": 131026, "message": "undeliverable"}]})
    assert with_message is not None
    assert with_message.message == "undeliverable"
    bare = error_from_status({"errors": [{"code": 131026}]})
    assert bare is not None
    assert bare.message == "failed"


@pytest.mark.parametrize(
    "item",
    [
        {"id": "wamid.X", "status": "delivered"},
        {"status": "failed", "errors": []},
        {"status": "failed", "errors": None},
        {"status": "failed", "errors": "oops"},
        {"status": "failed", "errors": ["oops"]},
    ],
)
def test_error_from_status_without_errors_is_none(item: dict[str, Any]) -> None:
    assert error_from_status(item) is None


def test_error_from_status_bool_code_is_not_code_1() -> None:
    error = error_from_status({"errors": [{"code": True, "title": "x"}]})
    assert error is not None
    assert type(error) is PermanentError
    assert error.code is None
