"""Errors a use case raises for its caller to turn into a 4xx (web) or a message (CLI).

Each error has a ``code`` (its class: ``not_found``, ``invalid``, …) and an English
``message``. The message is a ``Message``: a ``str`` that also keeps its ``template``
(the gettext message id) and the ``params`` put into it, so the console can show it in
the member's language (``web.ui.render`` translates every ``Message`` a page shows) while
the API and the CLI send the English text. A message with values is raised as
``Invalid("at most %(max)s characters", params={"max": 200})``.
"""

from __future__ import annotations

from collections.abc import Mapping


class Message(str):
    """An English message that can be translated: ``template % params``."""

    template: str
    params: Mapping[str, object]

    def __new__(cls, template: str, params: Mapping[str, object] | None = None) -> Message:
        values = dict(params or {})
        made = super().__new__(cls, template % values if values else template)
        made.template = template
        made.params = values
        return made


class ServiceError(Exception):
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        params: Mapping[str, object] | None = None,
    ) -> None:
        text = message if isinstance(message, Message) else Message(message, params)
        super().__init__(text)
        # Typed as the plain ``str`` callers use; at run time it is the ``Message``.
        self.message: str = text
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
