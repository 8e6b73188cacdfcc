"""Static files as browsers like them: compressed, cached, and a favicon.

``AssetFiles`` is Starlette's ``StaticFiles`` plus two things. Text files (CSS,
JavaScript, SVG, JSON, HTML) go out gzip-compressed to clients that accept it, each
compressed once per file version and kept in memory. And every answer says how long
to keep it: a URL carrying the current ``?v=`` (``asset_version``, a hash of the
files' contents that the templates put on every link) may be kept for a year, since a
changed file gets a new URL; any other URL is revalidated (``no-cache``) with its
``ETag``, which costs a 304 and no body.

``/docs`` (``web.api_docs``) serves Swagger UI's files from the ``fastapi-offline``
package through the same class, so the API explorer works without internet.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import cache
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from rundfunk import __version__

# A year: what browsers and proxies treat as "forever" for a versioned URL.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MIN_COMPRESS_BYTES = 500  # below this gzip's header costs more than it saves
_MAX_CACHED_BYTES = 8 * 1024 * 1024  # files larger than this are compressed on every request


@cache
def asset_version(*directories: Path) -> str:
    """``<release>-<hash of every file under directories>``: changes with any file."""
    digest = hashlib.sha256()
    for directory in directories:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(path.read_bytes())
    return f"{__version__}-{digest.hexdigest()[:12]}"


@cache
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    """One file's gzip body; keyed by its modification time and size (a new version of
    the file is a new key)."""
    with open(path, "rb") as file:
        return gzip.compress(file.read(), compresslevel=6, mtime=0)


def _accepts_gzip(headers: Headers) -> bool:
    return any(
        part.split(";")[0].strip() == "gzip"
        for part in headers.get("accept-encoding", "").lower().split(",")
    )


class AssetFiles(StaticFiles):
    """``StaticFiles`` with gzip for text types and Cache-Control (see the module)."""

    def __init__(self, *, directory: Path, version: str) -> None:
        super().__init__(directory=directory)
        self.version = version

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code not in (200, 304):
            return response
        request_headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        versioned = f"v={self.version}" in query.split("&")
        response.headers["Cache-Control"] = IMMUTABLE if versioned else REVALIDATE
        response.headers["Vary"] = "Accept-Encoding"
        if (
            isinstance(response, FileResponse)
            and response.status_code == 200
            and scope.get("method") == "GET"
            and "range" not in request_headers
            and _accepts_gzip(request_headers)
            and response.media_type is not None
            and response.media_type.startswith(COMPRESSIBLE)
        ):
            return _compressed(response)
        return response


def _compressed(response: FileResponse) -> Response:
    stat = response.stat_result or os.stat(response.path)
    if stat.st_size < MIN_COMPRESS_BYTES:
        return response
    if stat.st_size > _MAX_CACHED_BYTES:
        body = _gzipped.__wrapped__(str(response.path), stat.st_mtime_ns, stat.st_size)
    else:
        body = _gzipped(str(response.path), stat.st_mtime_ns, stat.st_size)
    headers = {
        key: value
        for key, value in response.headers.items()
        if key.lower() not in ("content-length", "accept-ranges")
    }
    headers["content-encoding"] = "gzip"
    # The same content in another encoding: a weak tag (as nginx gives it), which
    # If-None-Match still matches, so a revalidation is a 304 either way.
    headers["etag"] = "W/" + response.headers["etag"].removeprefix("W/")
    return Response(body, status_code=200, headers=headers, media_type=response.media_type)
