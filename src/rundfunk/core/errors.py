"""The one error tree every channel maps its provider errors into.

The dispatcher decides what to do with a failed send only by the class of the
error, never by a provider's status code or message text::

    ChannelError                      any failed send; ``code`` keeps the provider's code
    ├── RetryableError                try again later (``retry_after`` seconds, if known)
    │   ├── RateLimitedError          a limit was hit; ``scope`` says whose
    │   └── OutcomeUnknownError       the request may have arrived: settle before resending
    ├── PermanentError                this recipient will never get this message
    │   ├── RecipientGoneError        blocked us / not on the platform: unsubscribe
    │   ├── OptedOutError             stopped marketing in the app: record an opt-out
    │   └── TemplateRequiredError     outside the 24 h window: free text not allowed
    ├── PauseBroadcastError           quality problem: stop the whole broadcast
    └── ChannelDisabledError          credentials revoked / account locked: stop the channel
"""

from __future__ import annotations

from enum import StrEnum


class ChannelError(Exception):
    """A send failed. ``code`` is the provider's own error code as text, if any."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def reason(self) -> str:
        """A short reason stored with the failed delivery."""
        return f"{self.code}: {self.message}" if self.code else self.message


class RetryableError(ChannelError):
    """Temporary: network trouble, 5xx, maintenance. Retry with backoff."""

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class RateScope(StrEnum):
    SENDER = "sender"  # the sending number / bot: slow the whole limiter down
    RECIPIENT = "recipient"  # this one recipient: retry them later, others go on
    ACCOUNT = "account"  # the whole app or business account


class RateLimitedError(RetryableError):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        scope: RateScope = RateScope.SENDER,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.scope = scope


class OutcomeUnknownError(RetryableError):
    """The connection broke after the request went out: the platform may have accepted
    the message. Resending at once could deliver it twice, so the row waits for the
    platform's status callback (which names it) and is only resent when none came."""


class PermanentError(ChannelError):
    """This message can never reach this recipient as it is. Mark it failed."""


class RecipientGoneError(PermanentError):
    """The recipient blocked us or no longer exists: unsubscribe them."""


class OptedOutError(PermanentError):
    """The recipient stopped marketing messages in the messenger app itself."""


class TemplateRequiredError(PermanentError):
    """Free text outside the customer-service window; only a template may be sent."""


class PauseBroadcastError(ChannelError):
    """The platform asks us to stop sending this broadcast (quality, template paused)."""


class ChannelDisabledError(ChannelError):
    """The channel cannot send at all until an admin acts (token revoked, account locked)."""
