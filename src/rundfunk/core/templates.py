"""Message templates as the platform approved them: what parameters each one needs.

A WhatsApp template has positional placeholders ``{{1}}``, ``{{2}}`` … in its header
and body and in the suffix of a dynamic URL button; a media header needs one image,
video or document. ``TemplateShape`` reads that from the synced components, and
``check`` tells an editor at compose time what is missing, instead of the platform
failing every send later (error 132000).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
SENDABLE = "APPROVED"
# What a text parameter may be (Meta rejects newlines, tabs and more than 4 spaces).
MAX_PARAMETER = 1024


class TemplateError(ValueError):
    """The template cannot be sent with these parameters; the message says why."""


def placeholder_count(text: str | None) -> int:
    """How many parameters a text needs: its highest ``{{n}}`` (they count from 1)."""
    numbers = [int(n) for n in PLACEHOLDER.findall(text or "")]
    return max(numbers, default=0)


@dataclass(frozen=True)
class TemplateShape:
    header_format: str | None  # TEXT | IMAGE | VIDEO | DOCUMENT | LOCATION | None
    header_params: int
    body_params: int
    url_buttons: tuple[int, ...]  # indexes of URL buttons with a {{1}} suffix
    body: str

    @classmethod
    def of(cls, components: Sequence[Mapping[str, Any]]) -> TemplateShape:
        header_format: str | None = None
        header_params = body_params = 0
        body = ""
        url_buttons: list[int] = []
        for component in components:
            kind = str(component.get("type", "")).upper()
            if kind == "HEADER":
                header_format = str(component.get("format", "TEXT")).upper()
                if header_format == "TEXT":
                    header_params = placeholder_count(component.get("text"))
            elif kind == "BODY":
                body = str(component.get("text") or "")
                body_params = placeholder_count(body)
            elif kind == "BUTTONS":
                for index, button in enumerate(component.get("buttons") or []):
                    if (
                        isinstance(button, Mapping)
                        and str(button.get("type", "")).upper() == "URL"
                        and placeholder_count(str(button.get("url") or ""))
                    ):
                        url_buttons.append(index)
        return cls(header_format, header_params, body_params, tuple(url_buttons), body)

    @property
    def media_header(self) -> bool:
        return self.header_format in MEDIA_FORMATS


def check(
    shape: TemplateShape,
    *,
    status: str,
    body_parameters: Sequence[str],
    header_parameters: Sequence[str] = (),
    button_parameters: Sequence[str] = (),
    header_media: str | None = None,
) -> None:
    """Raise ``TemplateError`` unless these parameters fit the template exactly."""
    if status.upper() != SENDABLE:
        raise TemplateError(f"template is {status}, only APPROVED templates can be sent")
    if len(body_parameters) != shape.body_params:
        raise TemplateError(
            f"the template's body needs {shape.body_params} parameter(s), "
            f"got {len(body_parameters)}"
        )
    if shape.media_header:
        if not header_media:
            raise TemplateError(
                f"the template has a {shape.header_format} header: give header_media "
                "(a https link or an uploaded media id)"
            )
    elif header_media:
        raise TemplateError("the template has no media header; drop header_media")
    if len(header_parameters) != shape.header_params:
        raise TemplateError(
            f"the template's header needs {shape.header_params} parameter(s), "
            f"got {len(header_parameters)}"
        )
    if len(button_parameters) != len(shape.url_buttons):
        raise TemplateError(
            f"the template has {len(shape.url_buttons)} URL button(s) with a parameter, "
            f"got {len(button_parameters)} button parameter(s)"
        )
    for name, values in (
        ("body", body_parameters),
        ("header", header_parameters),
        ("button", button_parameters),
    ):
        for number, value in enumerate(values, start=1):
            if not value.strip():
                raise TemplateError(f"{name} parameter {number} is empty")
            if len(value) > MAX_PARAMETER:
                raise TemplateError(
                    f"{name} parameter {number} is longer than {MAX_PARAMETER} characters"
                )


_BREAKS = re.compile(r"[\t\r\n]+")
_GAPS = re.compile(r" {5,}")


def clean_parameter(value: str) -> str:
    """A rendered parameter as the platform accepts it: no newlines, tabs or long gaps."""
    return _GAPS.sub(" ", _BREAKS.sub(" ", value)).strip()


def preview(body: str, parameters: Sequence[str]) -> str:
    """The body with its placeholders filled, as the person will read it."""

    def fill(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return parameters[index] if 0 <= index < len(parameters) else match.group(0)

    return PLACEHOLDER.sub(fill, body)
