"""All of Rundfunk's settings, read once from ``RUNDFUNK_*`` environment variables.

Every field is documented here and in the README's configuration table; nothing else
in the code reads the environment.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rundfunk.core.addresses import Network, parse_networks
from rundfunk.private_files import write_private


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNDFUNK_", extra="ignore")

    data_dir: Path = Field(
        default=Path("rundfunk-data"),
        description="Where the embedded mode keeps its SQLite file and generated secret key.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "sqlite:///path/to/file.db or postgresql://user:pass@host/db. The async driver "
            "(aiosqlite, asyncpg) is chosen internally. Default: SQLite in the data dir."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "redis://host:port/db for the scaled mode: one rate limit per sender shared by "
            "every worker, and live console updates fanned out to every web node. Without "
            "it the limit is kept in PostgreSQL (or in process on SQLite)."
        ),
    )
    secret_key: str | None = Field(
        default=None,
        description=(
            "Key that encrypts channel credentials at rest. Default: generated once and "
            "kept in <data_dir>/secret.key. Set it explicitly when several machines share a "
            "database."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server binds to.")
    keepalive_seconds: int = Field(
        default=75,
        ge=1,
        description=(
            "How long the web server keeps an idle HTTP connection open. Keep it longer than "
            "the idle timeout of any proxy or client in front (nginx 75 s, most HTTP "
            "clients 5-60 s): the side that closes first races the other's next request."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description="Public URL of this installation (for webhook URLs). Default: http://host:port",
    )
    sandbox_enabled: bool = Field(
        default=True,
        description="Serve the sandbox channel's simulated-phone endpoints under /sandbox.",
    )
    sandbox_public: bool = Field(
        default=False,
        description=(
            "Let clients on other machines use the unauthenticated /sandbox phone endpoints. "
            "Off: they answer only clients on this machine (loopback, not forwarded by a "
            "proxy), so a server bound to a public address does not show anyone what the "
            "sandbox phones received. The console's phone simulator works from anywhere."
        ),
    )
    demo: bool = Field(
        default=True,
        description="On first start of an empty database, create a demo workspace and owner.",
    )
    # Dispatcher tuning. Defaults fit one process on a small machine.
    chunk_size: int = Field(default=500, ge=1, le=10_000, description="Deliveries per claim.")
    send_concurrency: int = Field(default=64, ge=1, le=1024, description="Parallel sends.")
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed chunk stays ours before others may take it.",
    )
    max_attempts: int = Field(default=5, ge=1, description="Sends tried before a delivery fails.")
    retry_base_seconds: float = Field(default=2.0, gt=0, description="First retry delay.")
    retry_cap_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    pause_error_share: float = Field(
        default=0.5, gt=0, le=1, description="Pause a broadcast when this share of sends fails."
    )
    pause_min_sample: int = Field(
        default=50, ge=1, description="Sends attempted before the error share is judged."
    )
    poll_seconds: float = Field(
        default=0.5, gt=0, description="How often an idle worker and the scheduler look for work."
    )
    settle_seconds: float = Field(
        default=120.0,
        ge=0,
        description=(
            "How long a platform send whose outcome is unknown (connection lost, worker "
            "died) waits for its status callback before it is sent again."
        ),
    )
    template_sync_seconds: float = Field(
        default=3600.0, gt=0, description="How often WhatsApp templates are synced."
    )
    channel_check_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "How often each process compares the versions of the channels it holds with "
            "the database (the safety net when a change signal is lost)."
        ),
    )
    # Outbound addresses: the operator's, never a workspace's (docs/deployment.md).
    whatsapp_api_base_url: str = Field(
        default="https://graph.facebook.com",
        description=(
            "Where every WhatsApp channel sends its Graph API requests (a proxy, a test "
            "server). Channels cannot choose it."
        ),
    )
    allowed_private_networks: str = Field(
        default="",
        description=(
            "Comma-separated CIDRs (10.0.0.0/8, 127.0.0.1/32) that URLs a workspace chooses "
            "(fetched or posted to by this server) may resolve to. Empty: loopback, "
            "link-local, private, multicast and reserved addresses are refused."
        ),
    )
    # Operations: metrics and logs (docs/deployment.md).
    metrics_token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "Bearer token that /metrics (and the RUNDFUNK_METRICS_PORT endpoint) requires. "
            "Unset: metrics answer only clients on this machine (loopback, not forwarded "
            "by a proxy)."
        ),
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "For a process without the web server (rundfunk worker): serve its metrics on "
            "RUNDFUNK_HOST at this port. serve has /metrics on its own port already."
        ),
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description=(
            "json: one JSON object per line; text: for reading; auto: text when stderr "
            "is a terminal, json otherwise (systemd, containers)."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level that is logged."
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("whatsapp_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in {"http", "https"} or not rest.strip("/"):
            raise ValueError("RUNDFUNK_WHATSAPP_API_BASE_URL must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("allowed_private_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_networks(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("RUNDFUNK_DATABASE_URL must start with sqlite:// or postgresql://")
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'rundfunk.db').resolve()}"

    @cached_property
    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(32)
        try:
            write_private(path, key + "\n")  # data dir 0700, key 0600 from the start
        except FileExistsError:  # another process wrote it first: use theirs
            return path.read_text().strip()
        return key

    @cached_property
    def private_networks(self) -> tuple[Network, ...]:
        """``allowed_private_networks`` parsed (checked at start)."""
        return parse_networks(self.allowed_private_networks)

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")
