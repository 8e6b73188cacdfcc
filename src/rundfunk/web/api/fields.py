"""Field types the request models share: message text, media URLs, aware datetimes.

Checked at the boundary so that a client learns which field is wrong before any
service runs; the services check again what only they can judge (audience, state).

Conventions for every route (``tests/web/test_web_openapi_contract.py`` checks them on
the OpenAPI document, ``tests/e2e/test_e2e_fuzz.py`` fuzzes against it): ids in a path
are ``PathId``, in a body ``Id``; cursors ``Annotated[AfterId, Query()]``; id filters
``Query(ge=1, le=MAX_ID)``; ``limit`` ``Query(ge=1, le=PAGE_LIMIT_MAX)``; every string
parameter has a ``max_length`` (or is a ``Literal``); bodies are models with
``model_config = REQUEST``. NUL, lone surrogates and non-finite numbers need nothing:
``web.request_checks`` refuses them for every route of the app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

# Requests name every field they accept; a typo ("txt") is an error, not ignored.
REQUEST = ConfigDict(extra="forbid", str_max_length=100_000)

MAX_TEXT = 4096  # WhatsApp's limit for a text message body
MAX_URL = 2000
PAGE_LIMIT_MAX = 500


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _iso_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    """Parse an ISO 8601 string with a time zone, saying exactly what is wrong if not."""
    example = "e.g. 2026-12-01T09:00:00+01:00 or 2026-12-01T08:00:00Z"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"needs a time zone, {example}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 date-time string with a time zone, {example}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; add one, {example}")
    try:
        result = handler(value)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "not a date-time")
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time with a time zone ({reason}); {example}"
        ) from None
    assert isinstance(result, datetime)
    return result


MessageText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT, description=f"1 to {MAX_TEXT} characters."),
    AfterValidator(_not_blank),
]
MediaUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL, description="An http(s) URL of a picture or file."),
    AfterValidator(_http_url),
]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
AwareDateTime = Annotated[
    AwareDatetime,
    BaseModel,
    WrapValidator(_iso_datetime),
    Field(description="ISO 8601 with a time zone, e.g. 2026-12-01T09:00:00+01:00."),
]
MAX_ID = 2**63 - 1  # beyond a 64-bit integer the database cannot even compare
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
AfterId = Annotated[
    int, Field(ge=0, le=MAX_ID, description="Return items with an id above this one.")
]


def limit_field(default: int) -> Any:
    return Field(default, ge=1, le=PAGE_LIMIT_MAX, description="Items per page.")


def next_after_id(items: list[dict[str, Any]], limit: int) -> int | None:
    """The cursor for the next page, or None when this page was the last."""
    return int(items[-1]["id"]) if len(items) >= limit and items else None


TemplateParameter = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        description="Personalizable text, e.g. {{ contact.name }}; rendered per contact.",
    ),
]


class TemplateSpec(BaseModel):
    """An approved WhatsApp template and what fills its placeholders."""

    model_config = REQUEST

    name: Annotated[str, Field(min_length=1, max_length=512, examples=["news_update"])]
    language: Annotated[str, Field(min_length=2, max_length=16, examples=["de"])]
    body_parameters: list[TemplateParameter] = Field(default_factory=list, max_length=100)
    header_parameters: list[TemplateParameter] = Field(default_factory=list, max_length=10)
    button_parameters: list[TemplateParameter] = Field(
        default_factory=list, max_length=10, description="Suffixes of dynamic URL buttons."
    )
    header_media: TemplateParameter | None = Field(
        default=None, description="For an IMAGE/VIDEO/DOCUMENT header: a https link or media id."
    )


class RichContent(BaseModel):
    """What a WhatsApp message may carry beyond text and a media link."""

    template: TemplateSpec | None = Field(
        default=None, description="WhatsApp: send this approved template."
    )
    media_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="WhatsApp: a file uploaded with POST /channels/{id}/media."
    )
    media_kind: Literal["image", "video", "audio", "document", "sticker"] | None = None
    filename: Annotated[str, Field(min_length=1, max_length=240)] | None = None
    preview_url: bool = Field(default=False, description="Show a preview of the first link.")

    def rich(self) -> dict[str, Any]:
        """Keyword arguments for the services' compose step."""
        return {
            "template": self.template.model_dump() if self.template else None,
            "media_id": self.media_id,
            "media_kind": self.media_kind,
            "filename": self.filename,
            "preview_url": self.preview_url,
        }
