"""A thin Graph API client for one WhatsApp number: messages, media, templates, profile.

aiohttp with one keep-alive connection pool per number (measured ~18x httpx's rate at
concurrency 64 on the same machine, see ARCHITECTURE.md). Every failure is raised as
a ``core.errors`` class: the Graph API's own error by its ``error.code``, network
trouble as retryable — or, when the request may already have arrived, as
``OutcomeUnknownError`` so that the platform's status callback can settle it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from rundfunk.channels.whatsapp.errors import error_from_body
from rundfunk.core import errors

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
PROFILE_FIELDS = "about,address,description,email,profile_picture_url,websites,vertical"


@dataclass(frozen=True)
class WhatsAppConfig:
    phone_number_id: str
    waba_id: str
    access_token: str
    app_secret: str
    verify_token: str
    api_base_url: str = DEFAULT_BASE_URL
    api_version: str = DEFAULT_API_VERSION
    display_phone_number: str | None = None

    def url(self, *parts: str) -> str:
        return "/".join([self.api_base_url.rstrip("/"), self.api_version, *parts])


class GraphClient:
    def __init__(
        self,
        config: WhatsAppConfig,
        *,
        connections: int = 128,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10.0)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=60),
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            )
        return self._session

    async def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
        unknown_on_break: bool = False,
    ) -> Any:
        """One request; raises the mapped ``ChannelError`` for anything but a 2xx."""
        try:
            async with self.session.request(
                method, url, json=json, data=data, params=params
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if 200 <= response.status < 300:
                    return body
                raise error_from_body(body, http_status=response.status)
        except errors.ChannelError:
            raise
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached the platform: safe to send again after a backoff.
            raise errors.RetryableError(f"network: {exc}", code="network") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            text = f"network: {type(exc).__name__}: {exc}"
            if unknown_on_break:
                raise errors.OutcomeUnknownError(text, code="network") from exc
            raise errors.RetryableError(text, code="network") from exc

    async def send(self, payload: Mapping[str, Any]) -> str:
        """Send one message body; returns the ``wamid``."""
        body = await self._call(
            "POST",
            self.config.url(self.config.phone_number_id, "messages"),
            json=payload,
            unknown_on_break=True,
        )
        try:
            return str(body["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            # A 2xx means accepted; without an id only the callback can tell which it was.
            raise errors.OutcomeUnknownError("accepted without a message id", code="no_id") from exc

    async def upload_media(self, data: bytes, *, mime_type: str, filename: str) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, filename=filename, content_type=mime_type)
        body = await self._call(
            "POST", self.config.url(self.config.phone_number_id, "media"), data=form
        )
        if not isinstance(body, Mapping) or "id" not in body:
            raise errors.PermanentError("media upload answered without an id", code="no_id")
        return str(body["id"])

    async def templates(self, *, page_size: int = 100) -> list[dict[str, Any]]:
        """Every template of the business account, following the paging cursors."""
        found: list[dict[str, Any]] = []
        url: str | None = self.config.url(self.config.waba_id, "message_templates")
        params: dict[str, str] | None = {
            "limit": str(page_size),
            "fields": "name,language,status,category,id,components",
        }
        pages = 0
        while url and pages < 1000:
            body = await self._call("GET", self._same_host(url), params=params)
            if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
                raise errors.PermanentError("template list without data", code="bad_response")
            found.extend(dict(item) for item in body["data"] if isinstance(item, Mapping))
            paging = body.get("paging")
            url = paging.get("next") if isinstance(paging, Mapping) else None
            params = None  # the next URL carries its own query
            pages += 1
        return found

    def _same_host(self, url: str) -> str:
        """A paging URL, kept on the configured host (a proxy, a test server)."""
        if not url.startswith(("http://", "https://")):
            return url
        base = urlsplit(self.config.api_base_url)
        parts = urlsplit(url)
        return parts._replace(scheme=base.scheme, netloc=base.netloc).geturl()

    async def profile(self) -> dict[str, Any]:
        body = await self._call(
            "GET",
            self.config.url(self.config.phone_number_id, "whatsapp_business_profile"),
            params={"fields": PROFILE_FIELDS},
        )
        data = body.get("data") if isinstance(body, Mapping) else None
        if isinstance(data, list) and data and isinstance(data[0], Mapping):
            return {k: v for k, v in data[0].items() if k != "messaging_product"}
        return {}

    async def update_profile(self, fields: Mapping[str, Any]) -> None:
        await self._call(
            "POST",
            self.config.url(self.config.phone_number_id, "whatsapp_business_profile"),
            json={"messaging_product": "whatsapp", **fields},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
