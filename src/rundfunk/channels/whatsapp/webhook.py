"""WhatsApp Cloud API webhooks, checked and turned into channel-neutral events (no I/O).

Three steps, in the order a request meets them: ``handshake`` answers Meta's GET that
subscribes the callback URL; ``verify_signature`` rejects a POST whose
``X-Hub-Signature-256`` is not the HMAC of its raw body; ``parse`` walks the verified
envelope (entries → changes → messages / statuses / preferences / template events).

Parsing is strict only about the envelope (a body that is not a WhatsApp webhook at all
raises ``MalformedWebhook``) and lenient inside it: Meta adds fields and message types
over time, and one broken item must not cost the others in the same POST. A message
that names its sender and id but whose content cannot be read is kept as kind
``"unsupported"`` rather than dropped, so the team inbox still shows that someone wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from rundfunk.channels.base import (
    MAX_ADDRESS,
    MAX_ERROR_CODE,
    MAX_LANGUAGE,
    MAX_NAME,
    MAX_PROVIDER_ID,
    MAX_TEMPLATE_NAME,
    ConsentUpdate,
    InboundEvent,
    InboundMessage,
    SignatureError,
    StatusUpdate,
    TemplateStatusUpdate,
)
from rundfunk.channels.whatsapp.errors import error_from_status
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.core.text import clean_json, clean_optional

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")

_STATUSES: Final[Mapping[str, DeliveryStatus]] = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.READ,  # a voice message was listened to: it was read
    "failed": DeliveryStatus.FAILED,
}
_CONSENT: Final[Mapping[str, bool]] = {"stop": False, "resume": True}

# Media message fields we pass on, renamed where the neutral name differs.
_MEDIA_FIELDS: Final[Mapping[str, str]] = {
    "id": "media_id",
    "mime_type": "mime_type",
    "sha256": "sha256",
    "filename": "filename",  # documents
}
_MEDIA_FLAGS: Final = ("animated", "voice")  # sticker / voice note
_CONTEXT_FIELDS: Final = ("from", "id", "forwarded", "frequently_forwarded")

Payload = dict[str, object]
# One message type's content → (text, payload), or None when it cannot be read.
Reader = Callable[[object], tuple[str | None, Payload] | None]


class MalformedWebhook(ValueError):
    """The body is not JSON or not the WhatsApp Business Account webhook envelope."""


# --- verification -----------------------------------------------------------------------


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo when Meta subscribes with our token, else None (403)."""
    challenge = params.get("hub.challenge")
    given = params.get("hub.verify_token")
    if params.get("hub.mode") != "subscribe" or challenge is None or given is None:
        return None
    # An empty configured token would accept an empty guess: never subscribe with it.
    if not verify_token or not hmac.compare_digest(given.encode(), verify_token.encode()):
        return None
    return challenge


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``SignatureError`` unless ``headers`` carry the app secret's HMAC of ``body``."""
    if not app_secret:
        raise SignatureError("no app secret configured: cannot check webhook signatures")
    header = _header(headers, SIGNATURE_HEADER)
    if header is None:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected sha256=<64 hex>")
    expected = sign(app_secret, body).removeprefix("sha256=")
    if not hmac.compare_digest(match.group(1).lower(), expected):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # A plain dict keeps whatever case the caller used; Starlette's Headers lower-cases.
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


# --- parsing ----------------------------------------------------------------------------


def parse(body: bytes, *, phone_number_id: str | None = None) -> list[InboundEvent]:
    """Every event in one webhook POST, in the order Meta listed them.

    With ``phone_number_id``, changes addressed to another number of the same app are
    skipped: one Meta app can serve several numbers, each its own Rundfunk channel.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedWebhook(f"webhook body is not JSON: {exc}") from None
    # Every string made storable at once (lone surrogates and NUL replaced): one odd
    # character must not fail an item at the database after the platform got its 200.
    data = clean_json(data)
    if not isinstance(data, dict):
        raise MalformedWebhook("webhook body is not a JSON object")
    if data.get("object") != "whatsapp_business_account":
        raise MalformedWebhook(f"not a WhatsApp Business Account webhook: {data.get('object')!r}")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook("webhook body has no entry list")

    events: list[InboundEvent | None] = []
    for entry in _dicts(entries):
        entry_time = _time(entry.get("time"))
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict) or _elsewhere(value, phone_number_id):
                continue
            field = change.get("field")
            if field == "messages":
                names = _names(value)
                events.extend(_message(m, names) for m in _dicts(value.get("messages")))
                events.extend(_status(s) for s in _dicts(value.get("statuses")))
            elif field == "user_preferences":
                names = _names(value)
                events.extend(_consent(p, names) for p in _dicts(value.get("user_preferences")))
            elif field == "message_template_status_update":
                events.append(_template(value, entry_time))
    # Items too broken to identify came back as None.
    return [event for event in events if event is not None]


def _elsewhere(value: Mapping[str, Any], phone_number_id: str | None) -> bool:
    metadata = value.get("metadata")
    if phone_number_id is None or not isinstance(metadata, dict):
        return False
    theirs = metadata.get("phone_number_id")
    return theirs is not None and str(theirs) != phone_number_id


def _names(value: Mapping[str, Any]) -> dict[str, str]:
    """Profile names by wa_id, from the change's ``contacts``."""
    names: dict[str, str] = {}
    for contact in _dicts(value.get("contacts")):
        profile = contact.get("profile")
        wa_id = _str(contact, "wa_id", MAX_ADDRESS)
        name = _str(profile, "name", MAX_NAME) if isinstance(profile, dict) else None
        if wa_id is not None and name is not None:
            names[wa_id] = name
    return names


def _message(item: Mapping[str, Any], names: Mapping[str, str]) -> InboundMessage | None:
    sender, message_id = _str(item, "from", MAX_ADDRESS), _str(item, "id", MAX_PROVIDER_ID)
    if not sender or not message_id:
        return None
    kind = _str(item, "type") or ""
    reader = _READERS.get(kind)
    read = reader(item.get(kind)) if reader is not None else None
    text: str | None = None
    payload: Payload = {"type": kind or None}
    if read is not None:
        text, payload = read
    else:
        kind = "unsupported"  # unknown or unreadable: kept, so the inbox shows it
    context = item.get("context")
    if isinstance(context, dict) and any(k in context for k in _CONTEXT_FIELDS):
        payload["context"] = {k: context[k] for k in _CONTEXT_FIELDS if k in context}
    if isinstance(item.get("referral"), dict):  # the ad a click-to-WhatsApp chat came from
        payload["referral"] = item["referral"]
    if isinstance(item.get("errors"), list):
        payload["errors"] = item["errors"]
    return InboundMessage(
        address=sender,
        provider_message_id=message_id,
        timestamp=_time(item.get("timestamp")) or datetime.now(UTC),
        kind=kind,
        text=text,
        name=names.get(sender),
        payload=payload,
    )


def _status(item: Mapping[str, Any]) -> StatusUpdate | None:
    message_id, raw = _str(item, "id", MAX_PROVIDER_ID), item.get("status")
    status = _STATUSES.get(raw) if isinstance(raw, str) else None
    if not message_id or status is None:
        return None  # "deleted", "warning" and whatever comes next: nothing to record
    error = error_from_status(item) if status is DeliveryStatus.FAILED else None
    return StatusUpdate(
        provider_message_id=message_id,
        status=status,
        timestamp=_time(item.get("timestamp")) or datetime.now(UTC),
        callback_data=_str(item, "biz_opaque_callback_data"),
        error_code=clean_optional(error.code, MAX_ERROR_CODE) if error is not None else None,
        error_reason=error.reason if error is not None else None,
        recipient=_str(item, "recipient_id", MAX_ADDRESS),
        error=error,
    )


def _consent(item: Mapping[str, Any], names: Mapping[str, str]) -> ConsentUpdate | None:
    wa_id, value = _str(item, "wa_id", MAX_ADDRESS), item.get("value")
    opted_in = _CONSENT.get(value) if isinstance(value, str) else None
    if not wa_id or item.get("category") != "marketing_messages" or opted_in is None:
        return None
    return ConsentUpdate(
        address=wa_id,
        opted_in=opted_in,
        timestamp=_time(item.get("timestamp")) or datetime.now(UTC),
        category="marketing",
        detail=_str(item, "detail"),
        name=names.get(wa_id),
    )


def _template(value: Mapping[str, Any], when: datetime | None) -> TemplateStatusUpdate | None:
    name = _str(value, "message_template_name", MAX_TEMPLATE_NAME)
    language = _str(value, "message_template_language", MAX_LANGUAGE)
    event = _str(value, "event")
    if name is None or language is None or event is None:
        return None
    reason = _str(value, "reason")
    if reason is None or reason == "NONE":
        # Pauses and locks explain themselves in other_info instead of reason.
        other = value.get("other_info")
        reason = _str(other, "description") if isinstance(other, dict) else None
    return TemplateStatusUpdate(
        name=name,
        language=language,
        status=event,
        timestamp=when or datetime.now(UTC),
        reason=reason,
    )


# --- one reader per message type --------------------------------------------------------


def _text(content: object) -> tuple[str | None, Payload] | None:
    return (_str(content, "body"), {}) if isinstance(content, dict) else None


def _media(content: object) -> tuple[str | None, Payload] | None:
    if not isinstance(content, dict):
        return None
    payload: Payload = {
        ours: content[theirs] for theirs, ours in _MEDIA_FIELDS.items() if _is(content, theirs, str)
    }
    payload.update({flag: content[flag] for flag in _MEDIA_FLAGS if _is(content, flag, bool)})
    return _str(content, "caption"), payload


def _location(content: object) -> tuple[str | None, Payload] | None:
    if not isinstance(content, dict):
        return None
    payload: Payload = {k: content[k] for k in ("latitude", "longitude") if _number(content, k)}
    payload.update({k: content[k] for k in ("name", "address", "url") if _is(content, k, str)})
    named = ", ".join(str(payload[k]) for k in ("name", "address") if payload.get(k))
    if not named and "latitude" in payload and "longitude" in payload:
        named = f"{payload['latitude']}, {payload['longitude']}"
    return named or None, payload


def _contacts(content: object) -> tuple[str | None, Payload] | None:
    if not isinstance(content, list):
        return None
    first = content[0] if content and isinstance(content[0], dict) else {}
    name = first.get("name")
    return (_str(name, "formatted_name") if isinstance(name, dict) else None), {"contacts": content}


def _reaction(content: object) -> tuple[str | None, Payload] | None:
    if not isinstance(content, dict):
        return None
    # No emoji (or an empty one) means the person took their reaction back.
    emoji = _str(content, "emoji") or None
    return emoji, {"message_id": _str(content, "message_id"), "emoji": emoji}


def _interactive(content: object) -> tuple[str | None, Payload] | None:
    reply_type = _str(content, "type") if isinstance(content, dict) else None
    if reply_type not in ("button_reply", "list_reply") or not isinstance(content, dict):
        return None  # flows (nfm_reply) and future kinds: shown as unsupported
    reply = content.get(reply_type)
    if not isinstance(reply, dict) or _str(reply, "id") is None:
        return None
    payload: Payload = {"reply_id": reply["id"], "reply_type": reply_type}
    if _is(reply, "description", str):
        payload["description"] = reply["description"]
    return _str(reply, "title"), payload


def _button(content: object) -> tuple[str | None, Payload] | None:
    if not isinstance(content, dict):
        return None
    return _str(content, "text"), {"reply_id": _str(content, "payload")}


_READERS: Final[Mapping[str, Reader]] = {
    "text": _text,
    "image": _media,
    "video": _media,
    "audio": _media,
    "document": _media,
    "sticker": _media,
    "location": _location,
    "contacts": _contacts,
    "reaction": _reaction,
    "interactive": _interactive,
    "button": _button,
}


# --- small readers of untrusted JSON ----------------------------------------------------


def _dicts(found: object) -> list[dict[str, Any]]:
    """The objects of a JSON list; anything else in it (or a non-list) is skipped."""
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def _str(found: object, key: str, limit: int | None = None) -> str | None:
    """A string field (cut to ``limit`` characters, the width of its column)."""
    value = found.get(key) if isinstance(found, dict) else None
    if not isinstance(value, str):
        return None
    return value if limit is None else value[:limit]


def _is(found: Mapping[str, Any], key: str, kind: type) -> bool:
    return isinstance(found.get(key), kind)


def _number(found: Mapping[str, Any], key: str) -> bool:
    value = found.get(key)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(found: object) -> datetime | None:
    """An aware UTC time from Unix seconds, given as a string (messages) or a number."""
    if isinstance(found, bool):
        return None
    try:
        if isinstance(found, str) and found.isascii() and found.strip().isdigit():
            return datetime.fromtimestamp(int(found), UTC)
        if isinstance(found, int):
            return datetime.fromtimestamp(found, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a year past 9999 is not a time Meta meant
    return None
