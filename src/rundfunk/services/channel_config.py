"""Per-kind channel configuration: checked once, split into settings and sealed secrets.

A channel row keeps plain ``settings`` (JSON, shown to admins) and ``credentials``
(Fernet-encrypted, never returned). ``split`` takes what an admin sends as
``config`` and decides where each field goes, so that an access token can never end
up in the readable half.

Where a channel's requests go (the Graph API's address) is the operator's setting
(``RUNDFUNK_WHATSAPP_API_BASE_URL``), not the workspace's: a tenant who could choose
it could aim the server, with the channel's access token, at any internal address.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from rundfunk.channels.whatsapp.client import DEFAULT_API_VERSION
from rundfunk.services.errors import Invalid

WHATSAPP_SECRETS = ("access_token", "app_secret", "verify_token")
WHATSAPP_REQUIRED = ("phone_number_id", "waba_id", "access_token", "app_secret")
WHATSAPP_SETTINGS = (
    "phone_number_id",
    "waba_id",
    "api_version",
    "display_phone_number",
    "throughput",
    "daily_recipient_cap",
    "pair_interval_seconds",
    "pair_burst",
    "keywords",
    "burst",
)
# Fields only the operator sets (environment), refused with the setting's name.
OPERATOR_SETTINGS = {"api_base_url": "RUNDFUNK_WHATSAPP_API_BASE_URL"}
WHATSAPP_DEFAULTS: dict[str, Any] = {
    "api_version": DEFAULT_API_VERSION,
    "throughput": 80.0,
    "pair_interval_seconds": 6.0,
    "pair_burst": 3,
}
MAX_WHATSAPP_THROUGHPUT = 1000.0
_DIGITS = re.compile(r"^\d{1,32}$")
_VERSION = re.compile(r"^v\d{1,3}\.\d{1,3}$")
_PHONE = re.compile(r"^\+?[\d ()-]{6,32}$")


def _text(config: Mapping[str, Any], key: str, *, limit: int = 512) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"config.{key}: required, a non-empty string")
    if len(value) > limit:
        raise Invalid(f"config.{key}: longer than {limit} characters")
    return value.strip()


def _number(config: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise Invalid(f"config.{key}: must be a number from {low:g} to {high:g}")
    return float(value)


def split_whatsapp(
    config: Mapping[str, Any], *, existing: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a WhatsApp config; returns (settings, credentials).

    ``existing`` is the current settings merged with the current credentials, for an
    update: fields not given keep their value.
    """
    for key, setting in OPERATOR_SETTINGS.items():
        if key in config:
            raise Invalid(
                f"config.{key}: an operator setting, not a channel's: the server's "
                f"administrator sets {setting} for every channel"
            )
    kept = {k: v for k, v in (existing or {}).items() if k not in OPERATOR_SETTINGS}
    merged: dict[str, Any] = {**WHATSAPP_DEFAULTS, **kept, **config}
    unknown = set(config) - set(WHATSAPP_SETTINGS) - set(WHATSAPP_SECRETS)
    if unknown:
        raise Invalid(
            f"config: unknown field(s) {', '.join(sorted(unknown))}; known: "
            + ", ".join(sorted({*WHATSAPP_SETTINGS, *WHATSAPP_SECRETS}))
        )
    for key in WHATSAPP_REQUIRED:
        _text(merged, key)
    for key in ("phone_number_id", "waba_id"):
        if not _DIGITS.match(merged[key].strip()):
            raise Invalid(f"config.{key}: digits only, as Meta's developer console shows it")
    if not _VERSION.match(_text(merged, "api_version")):
        raise Invalid("config.api_version: like v23.0")
    merged["throughput"] = _number(merged, "throughput", 1, MAX_WHATSAPP_THROUGHPUT)
    merged["pair_interval_seconds"] = _number(merged, "pair_interval_seconds", 0, 3600)
    burst = merged["pair_burst"]
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= 100:
        raise Invalid("config.pair_burst: a whole number from 1 to 100")
    cap = merged.get("daily_recipient_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise Invalid(
            "config.daily_recipient_cap: a whole number of unique recipients per 24 h "
            "(your messaging limit tier: 250, 2000, 10000, 100000), or null for none"
        )
    display = merged.get("display_phone_number")
    if display is not None and (not isinstance(display, str) or not _PHONE.match(display)):
        raise Invalid("config.display_phone_number: the number in international form, +49 …")
    token = merged.get("verify_token") or secrets.token_urlsafe(24)
    if not isinstance(token, str) or not 8 <= len(token) <= 200:
        raise Invalid("config.verify_token: 8 to 200 characters (leave it out to generate one)")
    merged["verify_token"] = token
    credentials = {key: str(merged[key]).strip() for key in WHATSAPP_SECRETS}
    settings = {
        key: (merged[key].strip() if isinstance(merged[key], str) else merged[key])
        for key in WHATSAPP_SETTINGS
        if key in merged and merged[key] is not None
    }
    return settings, credentials


def wa_digits(display_phone_number: str | None) -> str | None:
    """The number as click-to-chat links want it: digits only, international."""
    if not display_phone_number:
        return None
    digits = re.sub(r"\D", "", display_phone_number)
    return digits or None
