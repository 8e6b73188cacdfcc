"""The one rule for media attached to outbound messages, shared by broadcasts and replies."""

from __future__ import annotations

from urllib.parse import urlparse

from rundfunk.services.errors import Invalid

MAX_MEDIA_URL = 2000  # WhatsApp's media link limit is generous; longer ones are typos


def check_media_url(media_url: str | None) -> None:
    """Refuse anything but an absolute http(s) URL the platform can fetch."""
    if media_url is None:
        return
    parsed = urlparse(media_url)
    too_long = len(media_url) > MAX_MEDIA_URL
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or too_long:
        raise Invalid(f"media_url must be an http(s) URL of at most {MAX_MEDIA_URL} characters")
