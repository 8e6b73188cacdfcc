"""Text from outside made storable: no lone surrogates, no NUL, no more than a column holds.

Two characters pass JSON and Python but not the databases: a lone UTF-16 surrogate
(``"\\ud800"`` in JSON decodes to a ``str`` that cannot be encoded as UTF-8, so SQLite's
driver raises) and NUL (PostgreSQL text cannot hold ``\\x00``). Both are replaced with
U+FFFD, the replacement character, so the reader still sees that something was there.
Surrogate *pairs* in JSON (an emoji written as ``"\\ud83d\\ude00"``) decode to one code
point and are kept; any surrogate left in a ``str`` is a lone one.
"""

from __future__ import annotations

import math
import re
from typing import Final

REPLACEMENT: Final = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str, limit: int | None = None) -> str:
    """``text`` with lone surrogates and NUL replaced, cut to ``limit`` characters."""
    cleaned = _UNSTORABLE.sub(REPLACEMENT, text)
    return cleaned if limit is None else cleaned[:limit]


def clean_optional(text: str | None, limit: int | None = None) -> str | None:
    return None if text is None else clean_text(text, limit)


def clean_json(value: object) -> object:
    """A decoded JSON value with every string (keys too) cleaned, and NaN / Infinity
    (which Python's ``json`` accepts, and PostgreSQL's ``json`` refuses) made ``None``."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bounded_int(text: str, *, low: int, high: int) -> int | None:
    """The decimal integer ``text`` when it is one within ``low..high``, else None."""
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit() or len(digits) > len(str(high)):
        return None
    number = int(digits)
    return number if low <= number <= high else None
