"""The channel forms of the console: what an admin typed, as a channel's config.

The channels service checks a config and names the bad key in its message
(``config.waba_id: digits only …``); ``errors_for`` turns that into the form field to
show it next to. Secrets are write-only: an empty secret field keeps the stored one.
Keywords are three comma-separated lists (opt-in, opt-out, help); an empty list keeps
the built-in words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rundfunk.core.keywords import DEFAULT_KEYWORDS
from rundfunk.services.errors import Invalid, ServiceError

KEYWORD_LISTS = ("opt_in", "opt_out", "help")
SANDBOX_FIELDS = ("name", "throughput", "service_window_hours")
WHATSAPP_FIELDS = (
    "name",
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "throughput",
    "daily_recipient_cap",
    "pair_interval_seconds",
    "api_version",
)
WHATSAPP_SECRETS = ("access_token", "app_secret", "verify_token")
# Not on the form (the operator's settings), read only to refuse them with the reason.
OPERATOR_FIELDS = ("api_base_url",)
FORM_FIELDS = (
    *dict.fromkeys((*SANDBOX_FIELDS, *WHATSAPP_FIELDS)),
    *WHATSAPP_SECRETS,
    *OPERATOR_FIELDS,
    *(f"kw_{name}" for name in KEYWORD_LISTS),
)
_CONFIG_KEY = re.compile(r"^(?:settings: )?(?:config\.)?(\w+)(?:\.(\w+))?:? ")
_BOTH = re.compile(r"is in both (\w+) and (\w+)")


def _number(form: Mapping[str, str], key: str, *, whole: bool = False) -> float | int | None:
    raw = form.get(key, "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        return int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise Invalid(f"{key}: {kind}, not {raw!r}", field=key) from None


def keywords(form: Mapping[str, str]) -> dict[str, list[str]]:
    """The keyword lists typed into the form (comma- or line-separated)."""
    found: dict[str, list[str]] = {}
    for name in KEYWORD_LISTS:
        words = [w.strip() for w in re.split(r"[,\n]", form.get(f"kw_{name}", "")) if w.strip()]
        if words:
            found[name] = words
    return found


def sandbox_config(form: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {"keywords": keywords(form)}
    throughput = _number(form, "throughput")
    if throughput is not None:
        config["throughput"] = throughput
    # None clears it: no rehearsed service window.
    config["service_window_hours"] = _number(form, "service_window_hours")
    return config


def whatsapp_config(form: Mapping[str, str], *, creating: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"keywords": keywords(form)}
    for key in ("phone_number_id", "waba_id", "api_version", *WHATSAPP_SECRETS):
        value = form.get(key, "").strip()
        if value:
            config[key] = value
        elif creating and key in {"phone_number_id", "waba_id", "access_token", "app_secret"}:
            config[key] = ""  # refused by the service, next to this field
    if form.get("api_base_url", "").strip():  # the operator's setting: refused, with why
        config["api_base_url"] = form["api_base_url"].strip()
    display = form.get("display_phone_number", "").strip()
    if display or not creating:
        config["display_phone_number"] = display or None
    for key in ("throughput", "pair_interval_seconds"):
        number = _number(form, key)
        if number is not None:
            config[key] = number
    config["daily_recipient_cap"] = _number(form, "daily_recipient_cap", whole=True)
    return config


def errors_for(exc: ServiceError) -> dict[str, str]:
    """The service's message next to the field it names (above the form otherwise)."""
    field = exc.field
    if field is None:
        both = _BOTH.search(exc.message)
        match = _CONFIG_KEY.match(exc.message)
        if both:
            field = f"kw_{both.group(1)}"
        elif match and match.group(1) == "keywords" and match.group(2) in KEYWORD_LISTS:
            field = f"kw_{match.group(2)}"
        elif match and match.group(1) in FORM_FIELDS and match.group(1) not in OPERATOR_FIELDS:
            field = match.group(1)
        elif exc.message.startswith("name "):
            field = "name"
        elif "keyword" in exc.message:
            field = "kw_opt_in"
        elif "throughput" in exc.message or "per_second" in exc.message:
            field = "throughput"
    return {field or "_": exc.message}


def form_values(settings: Mapping[str, Any], name: str) -> dict[str, str]:
    """A channel's stored settings as the edit form's initial values (never secrets)."""
    values = {key: "" for key in FORM_FIELDS}
    values["name"] = name
    for key in (*SANDBOX_FIELDS, *WHATSAPP_FIELDS):
        value = settings.get(key)
        if value is not None and key != "name":
            values[key] = f"{value:g}" if isinstance(value, float) else str(value)
    words = keyword_lists(settings)
    for list_name in KEYWORD_LISTS:
        values[f"kw_{list_name}"] = ", ".join(words[list_name])
    return values


def keyword_lists(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """The words in effect on a channel: its own lists, the built-in ones otherwise."""
    stored = settings.get("keywords") or {}
    return {
        name: list(stored.get(name) or getattr(DEFAULT_KEYWORDS, name)) for name in KEYWORD_LISTS
    }
