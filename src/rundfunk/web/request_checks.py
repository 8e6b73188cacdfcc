"""Text no database can store is refused at the door: a 422 that names the field.

A NUL character (U+0000) cannot be stored in a PostgreSQL text column, and a lone
surrogate (U+D800..U+DFFF, which JSON can spell as ``"\\ud800"``) is not Unicode text
at all: neither SQLite nor PostgreSQL nor a JSON answer can encode it. Both used to
reach the services and end in a 500. ``storable_request`` is a dependency of the whole
app (``create_app`` passes it to ``FastAPI(dependencies=...)``), so it runs before every
route, the API's, the console's, the sandbox's and those added later alike, and checks:

- every path parameter and every query parameter (``?search=%00``), none longer than
  ``MAX_PARAM_CHARS``, and every integer one (declared ``int``) within 64 bits: the
  console's ids and cursors are refused beyond 2^63 - 1 like the API's, which bound
  theirs to 1..2^63 - 1 themselves (``web.api.fields.PathId``);
- the JSON body of a route that declares one, every string in it, keys included
  (``body.config.<key>``), however deeply nested, and every number in it finite
  (``1e400`` and ``NaN`` parse to values no JSON column or answer can hold);
- the fields of a form (``application/x-www-form-urlencoded`` or ``multipart/form-data``:
  the console's forms and uploads), and the file names of uploads.

The webhooks are left alone: a platform's signed body is checked over its raw bytes and
cleaned item by item when applied (``services.webhook_inbox``).
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from rundfunk.db.types import MAX_ID

NUL = "must not contain a NUL character (U+0000)"
SURROGATE = "must not contain a lone surrogate (U+D800 to U+DFFF); it is not Unicode text"
NOT_FINITE = "must be a finite number (1e400 is infinite; JSON has no NaN or Infinity)"
MAX_PARAM_CHARS = 8192
BEYOND_64_BITS = f"must be an integer from {-MAX_ID - 1} to {MAX_ID} (64 bits)"
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_MAX_REPORTED = 10
_SKIPPED_PREFIXES = ("/webhooks/",)
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None when it can."""
    if "\x00" in value:
        return NUL
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def printable(part: object) -> str:
    """A location part safe to put in an answer (NUL and surrogates spelled out)."""
    text = str(part).replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _walk(value: Any, location: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every unstorable string, key or number in ``value`` (an explicit stack: a body
    nested as deep as the JSON parser allows must not exhaust Python's recursion)."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, location)]
    while pending:
        item, here = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            yield here, NOT_FINITE
        elif isinstance(item, str):
            reason = unstorable(item)
            if reason:
                yield here, reason
        elif isinstance(item, dict):
            for key, sub in reversed(item.items()):
                inner = (*here, printable(key))
                pending.append((sub, inner))
                if isinstance(key, str) and (reason := unstorable(key)):
                    pending.append((_KeyProblem(reason), inner))
        elif isinstance(item, _KeyProblem):
            yield here, f"the key {item.reason}"
        elif isinstance(item, list | tuple):
            pending.extend((sub, (*here, str(i))) for i, sub in reversed(list(enumerate(item))))


class _KeyProblem:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return int in get_args(annotation)
    return False


# Per route: the names of its integer path and query parameters (dependencies included).
_INT_PARAMS: dict[int, tuple[APIRoute, frozenset[tuple[str, str]]]] = {}


def _int_params(route: APIRoute) -> frozenset[tuple[str, str]]:
    cached = _INT_PARAMS.get(id(route))
    if cached is not None and cached[0] is route:
        return cached[1]
    names: set[tuple[str, str]] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        for kind, params in (("path", dependant.path_params), ("query", dependant.query_params)):
            names.update((kind, p.alias) for p in params if _is_int(p.field_info.annotation))
        pending.extend(dependant.dependencies)
    found = frozenset(names)
    _INT_PARAMS[id(route)] = (route, found)
    return found


def _parameter(
    kind: str, name: str, value: Any, integers: frozenset[tuple[str, str]]
) -> Iterator[tuple[tuple[str, ...], str]]:
    location = (kind, printable(name))
    if isinstance(value, int):  # a path converted by {name:int}
        if not -MAX_ID - 1 <= value <= MAX_ID:
            yield location, BEYOND_64_BITS
        return
    if not isinstance(value, str):
        return
    yield from _walk(value, location)
    yield from _walk(name, location)
    if len(value) > MAX_PARAM_CHARS:
        yield location, f"must be at most {MAX_PARAM_CHARS} characters long"
    elif (kind, name) in integers and _INTEGER.fullmatch(value) and not _in_64_bits(value):
        yield location, BEYOND_64_BITS


def _in_64_bits(digits: str) -> bool:
    # Length first: int() refuses strings of over 4,300 digits with a ValueError.
    if len(digits.strip().lstrip("+-").lstrip("0")) > 19:
        return False
    return -MAX_ID - 1 <= int(digits) <= MAX_ID


async def _problems(request: Request) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    route = request.scope.get("route")
    integers = _int_params(route) if isinstance(route, APIRoute) else frozenset()
    for name, value in request.path_params.items():
        found.extend(_parameter("path", name, value, integers))
    for name, value in request.query_params.multi_items():
        found.extend(_parameter("query", name, value, integers))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(_FORMS):
        # Parsed once: FastAPI's Form() parameters and the CSRF check read the same form.
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                found.extend(_walk(value.filename or "", ("body", printable(name), "filename")))
            else:
                found.extend(_walk(value, ("body", printable(name))))
    elif _declares_body(request) and (
        not content_type or content_type.endswith(("/json", "+json"))
    ):
        try:
            body = await request.json()  # parsed already by FastAPI: cached on the request
        except ValueError:
            return found  # not JSON: FastAPI's own answer (400 bad_json) stands
        found.extend(_walk(body, ("body",)))
    return found


def _declares_body(request: Request) -> bool:
    route = request.scope.get("route")
    return isinstance(route, APIRoute) and route.body_field is not None


async def storable_request(request: Request) -> None:
    """Refuse (422, naming each field) any text in the request no database can store."""
    if request.url.path.startswith(_SKIPPED_PREFIXES):
        return
    problems = await _problems(request)
    if problems:
        raise RequestValidationError(
            [
                {"type": "string_unstorable", "loc": location, "msg": reason}
                for location, reason in problems[:_MAX_REPORTED]
            ]
        )
