"""Media: upload checks by MIME type and size, the media node and the download URL."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import GraphError, bad, check_token

if TYPE_CHECKING:
    from .server import FakeGraph

MB = 1024 * 1024
# Upload limits by MIME type: (media kind, bytes). Documents: the documented list.
MEDIA_LIMITS: dict[str, tuple[str, int]] = {
    "image/jpeg": ("image", 5 * MB),
    "image/png": ("image", 5 * MB),
    "video/mp4": ("video", 16 * MB),
    "video/3gpp": ("video", 16 * MB),
    "audio/aac": ("audio", 16 * MB),
    "audio/mp4": ("audio", 16 * MB),
    "audio/mpeg": ("audio", 16 * MB),
    "audio/amr": ("audio", 16 * MB),
    "audio/ogg": ("audio", 16 * MB),
    "image/webp": ("sticker", 500 * 1024),
    "text/plain": ("document", 100 * MB),
    "application/pdf": ("document", 100 * MB),
    "application/msword": ("document", 100 * MB),
    "application/vnd.ms-excel": ("document", 100 * MB),
    "application/vnd.ms-powerpoint": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        "document",
        100 * MB,
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "document",
        100 * MB,
    ),
}


async def read_upload(request: web.Request) -> tuple[str, bytes]:
    """Read and check a ``POST /{phone_number_id}/media`` form; the MIME type and bytes."""
    form = await request.post()
    if form.get("messaging_product") != "whatsapp":
        raise bad("Param messaging_product must be 'whatsapp'")
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise bad("Param file must be a file")
    mime_raw = form.get("type") or upload.content_type
    mime = str(mime_raw).split(";")[0].strip().lower()
    if mime not in MEDIA_LIMITS:
        raise GraphError(
            131053, f"Param file must be a file with one of the supported types, not {mime}"
        )
    kind, limit = MEDIA_LIMITS[mime]
    data = upload.file.read()
    if len(data) > limit:
        raise GraphError(131053, f"{kind} files may be at most {limit} bytes, got {len(data)}")
    return mime, data


async def media_info(graph: FakeGraph, request: web.Request) -> web.StreamResponse:
    media_id = request.match_info["node"]
    data = graph.media[media_id]
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "url": f"{graph.base_url}/media/{media_id}",
            "mime_type": graph.media_types[media_id],
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_size": len(data),
            "id": media_id,
        }
    )


async def download_media(graph: FakeGraph, request: web.Request) -> web.StreamResponse:
    try:
        check_token(request, graph.access_token)
    except GraphError as exc:
        return web.json_response(exc.body(), status=exc.http_status)
    media_id = request.match_info["media_id"]
    if media_id not in graph.media:
        return web.json_response({"error": "no such media"}, status=404)
    return web.Response(body=graph.media[media_id], content_type=graph.media_types[media_id])
