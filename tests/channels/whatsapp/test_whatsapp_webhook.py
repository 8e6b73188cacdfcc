"""WhatsApp webhooks: the subscribe handshake, signatures, and parsing every payload shape.

Fixtures in ``fixtures/<event>__<variant>.json`` are written from the Cloud API webhook
reference; all use phone_number_id "1001" and WhatsApp Business Account "2002".
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rundfunk.channels.base import (
    ConsentUpdate,
    InboundEvent,
    InboundMessage,
    SignatureError,
    StatusUpdate,
    TemplateStatusUpdate,
)
from rundfunk.channels.whatsapp import webhook
from rundfunk.channels.whatsapp.errors import MARKETING_CAP_RETRY_SECONDS
from rundfunk.channels.whatsapp.webhook import MalformedWebhook
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.core.errors import ChannelError, OptedOutError, PermanentError, RetryableError

FIXTURES = Path(__file__).parent / "fixtures"
NUMBER = "1001"
ANNA, BEN = "4915112345678", "4917698765432"
SHA = "4c8f1e0a9f3e2b7d6c5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e"
SENT_AT = datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)  # "1749416383"
STATUS_AT = datetime(2025, 6, 8, 21, 0, tzinfo=UTC)  # "1749416400"
REPLY_TO = {"from": "493090182000", "id": "wamid.out.1"}
SECRET = "app-secret-0123"


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def events(name: str, *, phone_number_id: str | None = NUMBER) -> list[InboundEvent]:
    return webhook.parse(body(name), phone_number_id=phone_number_id)


def message(name: str) -> InboundMessage:
    [only] = events(name)
    assert isinstance(only, InboundMessage)
    return only


def status(name: str) -> StatusUpdate:
    [only] = events(name)
    assert isinstance(only, StatusUpdate)
    return only


def envelope(*changes: Any) -> bytes:
    entry = {"id": "2002", "changes": list(changes)}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


# --- handshake --------------------------------------------------------------------------


def test_handshake_with_our_token_returns_the_challenge() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok-1", "hub.challenge": "1158201444"}
    assert webhook.handshake(params, "tok-1") == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "tok-2", "hub.challenge": "c"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "tok-1", "hub.challenge": "c"},
        {"hub.verify_token": "tok-1", "hub.challenge": "c"},
        {"hub.mode": "subscribe", "hub.challenge": "c"},
        {"hub.mode": "subscribe", "hub.verify_token": "tok-1"},
        {},
    ],
    ids=["wrong-token", "wrong-mode", "no-mode", "no-token", "no-challenge", "nothing"],
)
def test_handshake_refuses_anything_else(params: dict[str, str]) -> None:
    assert webhook.handshake(params, "tok-1") is None


def test_handshake_never_accepts_an_unset_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "c"}
    assert webhook.handshake(params, "") is None


# --- signatures -------------------------------------------------------------------------


def test_sign_is_hex_hmac_sha256_with_prefix() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published vector.
    signed = webhook.sign("key", b"The quick brown fox jumps over the lazy dog")
    assert signed == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


@pytest.mark.parametrize(
    "header", ["X-Hub-Signature-256", "x-hub-signature-256", "X-HUB-SIGNATURE-256"]
)
def test_valid_signature_passes_whatever_the_header_case(header: str) -> None:
    raw = body("text__plain")
    webhook.verify_signature(SECRET, {header: webhook.sign(SECRET, raw)}, raw)


def test_valid_signature_passes_with_starlette_headers() -> None:
    from starlette.datastructures import Headers

    raw = body("text__plain")
    headers = Headers({"X-Hub-Signature-256": webhook.sign(SECRET, raw)})
    webhook.verify_signature(SECRET, headers, raw)


def test_missing_signature_header_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing"):
        webhook.verify_signature(SECRET, {"Content-Type": "application/json"}, b"{}")


def test_signature_made_with_another_secret_is_rejected() -> None:
    raw = body("text__plain")
    with pytest.raises(SignatureError, match="does not match"):
        webhook.verify_signature(SECRET, {"X-Hub-Signature-256": webhook.sign("other", raw)}, raw)


def test_tampered_body_is_rejected() -> None:
    raw = body("text__plain")
    signature = webhook.sign(SECRET, raw)
    tampered = raw.replace(b"START", b"STOP!")
    assert len(tampered) == len(raw) and tampered != raw
    with pytest.raises(SignatureError, match="does not match"):
        webhook.verify_signature(SECRET, {"X-Hub-Signature-256": signature}, tampered)


def test_one_flipped_byte_is_rejected() -> None:
    raw = body("status__delivered")
    signature = webhook.sign(SECRET, raw)
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    with pytest.raises(SignatureError):
        webhook.verify_signature(SECRET, {"X-Hub-Signature-256": signature}, flipped)


@pytest.mark.parametrize(
    "header",
    [
        "0" * 64,  # no prefix
        "sha1=" + "0" * 40,  # the old SHA-1 header's format
        "sha256=" + "z" * 64,  # not hex
        "sha256=" + "0" * 63,  # too short
        "sha256=",
        "",
    ],
    ids=["no-prefix", "sha1", "non-hex", "short", "empty-digest", "empty"],
)
def test_malformed_signature_header_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        webhook.verify_signature(SECRET, {"X-Hub-Signature-256": header}, b"{}")


def test_bare_digest_of_the_right_hmac_is_still_malformed() -> None:
    raw = b"{}"
    digest = webhook.sign(SECRET, raw).removeprefix("sha256=")
    with pytest.raises(SignatureError, match="malformed"):
        webhook.verify_signature(SECRET, {"X-Hub-Signature-256": digest}, raw)


def test_no_app_secret_rejects_even_a_matching_signature() -> None:
    raw = b"{}"
    with pytest.raises(SignatureError, match="no app secret"):
        webhook.verify_signature("", {"X-Hub-Signature-256": webhook.sign("", raw)}, raw)


# --- inbound messages -------------------------------------------------------------------


def test_text_message() -> None:
    assert message("text__plain") == InboundMessage(
        address=ANNA,
        provider_message_id="wamid.in.text1",
        timestamp=SENT_AT,
        kind="text",
        text="START",
        name="Anna Schmidt",
        payload={},
    )


def test_text_reply_carries_its_context() -> None:
    got = message("text__with_context")
    assert (got.kind, got.text) == ("text", "Wann ist das nächste Treffen?")
    assert got.payload == {"context": REPLY_TO}


def test_forwarded_text_carries_the_forwarded_flags() -> None:
    got = message("text__forwarded")
    assert got.payload == {"context": {"forwarded": True, "frequently_forwarded": True}}


@pytest.mark.parametrize(
    ("name", "kind", "text", "payload"),
    [
        (
            "image__with_caption",
            "image",
            "Plakat für Samstag",
            {"media_id": "3101", "mime_type": "image/jpeg", "sha256": SHA},
        ),
        (
            "video__plain",
            "video",
            None,
            {"media_id": "3102", "mime_type": "video/mp4", "sha256": SHA},
        ),
        (
            "audio__voice",
            "audio",
            None,
            {
                "media_id": "3103",
                "mime_type": "audio/ogg; codecs=opus",
                "sha256": SHA,
                "voice": True,
            },
        ),
        (
            "document__with_filename",
            "document",
            "Die neue Satzung",
            {
                "media_id": "3104",
                "mime_type": "application/pdf",
                "sha256": SHA,
                "filename": "Satzung-2025.pdf",
            },
        ),
        (
            "sticker__animated",
            "sticker",
            None,
            {"media_id": "3105", "mime_type": "image/webp", "sha256": SHA, "animated": True},
        ),
    ],
)
def test_media_message(name: str, kind: str, text: str | None, payload: dict[str, object]) -> None:
    got = message(name)
    assert (got.kind, got.text, got.media_url) == (kind, text, None)
    assert got.payload == payload
    assert (got.address, got.name, got.timestamp) == (ANNA, "Anna Schmidt", SENT_AT)


def test_named_location_is_summarised_by_name_and_address() -> None:
    got = message("location__named")
    assert got.kind == "location"
    assert got.text == "Rotes Rathaus, Rathausstraße 15, 10178 Berlin"
    assert got.payload == {
        "latitude": 52.518611,
        "longitude": 13.408333,
        "name": "Rotes Rathaus",
        "address": "Rathausstraße 15, 10178 Berlin",
        "url": "https://example.org/rathaus",
    }


def test_bare_pin_is_summarised_by_its_coordinates() -> None:
    got = message("location__pin")
    assert (got.kind, got.text) == ("location", "48.137154, 11.576124")
    assert got.payload == {"latitude": 48.137154, "longitude": 11.576124}


def test_contact_card_keeps_the_cards_and_shows_the_first_name() -> None:
    got = message("contacts__one_card")
    assert (got.kind, got.text) == ("contacts", "Max Mustermann")
    cards = got.payload["contacts"]
    assert isinstance(cards, list) and len(cards) == 1
    assert cards[0]["phones"] == [
        {"phone": "+49 221 123456", "wa_id": "49221123456", "type": "WORK"}
    ]


def test_reaction() -> None:
    got = message("reaction__emoji")
    assert (got.kind, got.text) == ("reaction", "\U0001f44d")
    assert got.payload == {"message_id": "wamid.out.1", "emoji": "\U0001f44d"}


def test_removed_reaction_has_no_emoji() -> None:
    got = message("reaction__removed")
    assert (got.kind, got.text) == ("reaction", None)
    assert got.payload == {"message_id": "wamid.out.1", "emoji": None}


def test_reply_button_tap() -> None:
    got = message("interactive__button_reply")
    assert (got.kind, got.text) == ("interactive", "Nachrichten")
    assert got.payload == {
        "reply_id": "START news",
        "reply_type": "button_reply",
        "context": REPLY_TO,
    }


def test_list_row_tap_keeps_its_description() -> None:
    got = message("interactive__list_reply")
    assert (got.kind, got.text) == ("interactive", "Termine")
    assert got.payload == {
        "reply_id": "START events",
        "reply_type": "list_reply",
        "description": "Alle Veranstaltungen im Kiez",
        "context": REPLY_TO,
    }


def test_template_quick_reply_tap() -> None:
    got = message("button__template_quick_reply")
    assert (got.kind, got.text) == ("button", "Abmelden")
    assert got.payload == {"reply_id": "STOP", "context": REPLY_TO}


def test_unsupported_message_is_kept_with_its_errors() -> None:
    got = message("unsupported__unknown_type")
    assert (got.kind, got.text, got.provider_message_id) == ("unsupported", None, "wamid.in.unsup1")
    assert got.payload["type"] == "unsupported"
    errors = got.payload["errors"]
    assert isinstance(errors, list) and errors[0]["code"] == 131051


def test_message_type_we_do_not_know_is_kept_as_unsupported() -> None:
    got = message("unsupported__new_type")
    assert (got.kind, got.text) == ("unsupported", None)
    assert got.payload == {"type": "poll_vote"}
    assert (got.address, got.name) == (ANNA, "Anna Schmidt")


def test_ad_click_carries_the_referral() -> None:
    got = message("referral__ad_click")
    assert (got.kind, got.text) == ("text", "Hallo! Ich interessiere mich für den Newsletter.")
    referral = got.payload["referral"]
    assert isinstance(referral, dict)
    assert referral["source_type"] == "ad"
    assert referral["source_id"] == "120210000000000001"
    assert referral["ctwa_clid"] == "ARAkLkA8rmlFeiCktEJQ"


def test_broken_items_are_skipped_and_identifiable_ones_kept() -> None:
    before = datetime.now(UTC)
    got = events("messages__broken_items_skipped")
    assert [type(e).__name__ for e in got] == ["InboundMessage", "InboundMessage", "StatusUpdate"]
    image, text, delivered = got
    assert isinstance(image, InboundMessage) and isinstance(text, InboundMessage)
    # An image whose content is not an object: still shown, as unsupported.
    assert (image.provider_message_id, image.kind, image.payload) == (
        "wamid.in.broken_image",
        "unsupported",
        {"type": "image"},
    )
    # An unreadable timestamp falls back to the time of parsing.
    assert (text.text, text.provider_message_id) == ("still here", "wamid.in.ok")
    assert before <= text.timestamp <= datetime.now(UTC)
    assert isinstance(delivered, StatusUpdate)
    assert delivered.provider_message_id == "wamid.out.ok"


def test_several_entries_changes_messages_and_statuses_in_one_post() -> None:
    got = events("multi__two_entries_messages_and_statuses")
    summary = [
        (e.provider_message_id, e.address, e.name, e.text)
        if isinstance(e, InboundMessage)
        else (e.provider_message_id, e.status)
        for e in got
        if isinstance(e, InboundMessage | StatusUpdate)
    ]
    assert summary == [
        ("wamid.in.m1", ANNA, "Anna Schmidt", "START"),
        ("wamid.in.m2", BEN, "Ben Yilmaz", "Hallo"),
        ("wamid.out.1", DeliveryStatus.SENT),
        ("wamid.out.2", DeliveryStatus.DELIVERED),
        ("wamid.in.m3", BEN, "Ben Yilmaz", "STOP"),
        ("wamid.out.1", DeliveryStatus.READ),
    ]
    assert len(got) == len(summary)
    assert [e.timestamp.second for e in got] == [21, 22, 23, 24, 25, 26]


# --- statuses ---------------------------------------------------------------------------


def test_sent_status_with_pricing() -> None:
    assert status("status__sent_with_pricing") == StatusUpdate(
        provider_message_id="wamid.out.1",
        status=DeliveryStatus.SENT,
        timestamp=STATUS_AT,
        callback_data="d:42",
        recipient=ANNA,
    )


@pytest.mark.parametrize(
    ("name", "expected", "second", "callback"),
    [
        ("status__delivered", DeliveryStatus.DELIVERED, 10, "d:42"),
        ("status__read", DeliveryStatus.READ, 20, "m:7"),
        ("status__played", DeliveryStatus.READ, 30, None),  # a voice message listened to
    ],
)
def test_receipt_status(
    name: str, expected: DeliveryStatus, second: int, callback: str | None
) -> None:
    got = status(name)
    assert got.status is expected
    assert got.timestamp == STATUS_AT.replace(second=second)
    assert (got.callback_data, got.recipient) == (callback, ANNA)
    assert (got.error, got.error_code, got.error_reason) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "code", "error_class"),
    [
        ("status__failed_131026", "131026", PermanentError),
        ("status__failed_131050", "131050", OptedOutError),
        ("status__failed_131049", "131049", RetryableError),
    ],
)
def test_failed_status_maps_its_error(
    name: str, code: str, error_class: type[ChannelError]
) -> None:
    got = status(name)
    assert got.status is DeliveryStatus.FAILED
    assert (got.callback_data, got.recipient, got.timestamp) == ("d:42", ANNA, STATUS_AT)
    assert type(got.error) is error_class
    assert got.error_code == code
    assert got.error_reason == got.error.reason
    assert got.error_reason.startswith(f"{code}: ")


def test_failed_131026_is_undeliverable_not_an_opt_out() -> None:
    error = status("status__failed_131026").error
    assert isinstance(error, PermanentError) and not isinstance(error, OptedOutError)
    assert error.reason == "131026: Message undeliverable (Message Undeliverable.)"


def test_failed_131049_waits_at_least_a_day() -> None:
    error = status("status__failed_131049").error
    assert isinstance(error, RetryableError)
    assert error.retry_after is not None and error.retry_after >= 86400
    assert error.retry_after == MARKETING_CAP_RETRY_SECONDS


def test_failed_status_without_errors_has_no_error() -> None:
    got = status("status__failed_no_errors")
    assert got.status is DeliveryStatus.FAILED
    assert (got.error, got.error_code, got.error_reason) == (None, None, None)
    assert got.callback_data == "d:42"


def test_duplicated_status_is_passed_on_twice() -> None:
    # Deduplication is the status machine's job (advance ignores a repeat), not the parser's.
    first, second = events("status__duplicated")
    assert first == second
    assert isinstance(first, StatusUpdate) and first.status is DeliveryStatus.DELIVERED


def test_out_of_order_statuses_keep_the_order_they_came_in() -> None:
    got = events("status__out_of_order")
    assert [(e.status, e.timestamp.second) for e in got if isinstance(e, StatusUpdate)] == [
        (DeliveryStatus.READ, 20),
        (DeliveryStatus.DELIVERED, 10),
    ]


def test_unknown_status_strings_are_skipped() -> None:
    [only] = events("status__unknown_skipped")
    assert isinstance(only, StatusUpdate)
    assert (only.provider_message_id, only.status) == ("wamid.out.9", DeliveryStatus.DELIVERED)


def test_status_errors_are_ignored_unless_it_failed() -> None:
    item = {
        "id": "wamid.out.3",
        "status": "delivered",
        "timestamp": "1749416400",
        "recipient_id": ANNA,
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    [got] = webhook.parse(envelope({"field": "messages", "value": {"statuses": [item]}}))
    assert isinstance(got, StatusUpdate)
    assert (got.status, got.error, got.error_code) == (DeliveryStatus.DELIVERED, None, None)


# --- consent and templates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "opted_in", "detail"),
    [
        ("user_preferences__stop", False, "User requested to stop marketing messages"),
        ("user_preferences__resume", True, "User requested to resume marketing messages"),
    ],
)
def test_marketing_preference_from_the_app(name: str, opted_in: bool, detail: str) -> None:
    [got] = events(name)
    assert got == ConsentUpdate(
        address=ANNA,
        opted_in=opted_in,
        timestamp=datetime(2025, 6, 8, 21, 1, 40, tzinfo=UTC),
        category="marketing",
        detail=detail,
        name="Anna Schmidt",
    )


def test_other_preference_categories_and_values_are_skipped() -> None:
    prefs = [
        {"wa_id": ANNA, "category": "marketing_messages", "value": "maybe", "timestamp": 1},
        {"wa_id": ANNA, "category": "offers", "value": "stop", "timestamp": 1},
        {"category": "marketing_messages", "value": "stop", "timestamp": 1},
    ]
    raw = envelope({"field": "user_preferences", "value": {"user_preferences": prefs}})
    assert webhook.parse(raw) == []


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [
        (
            "template_status__paused",
            "PAUSED",
            "Your message template has been paused for 3 hours due to low quality.",
        ),
        ("template_status__approved", "APPROVED", None),  # reason "NONE"
        ("template_status__rejected", "REJECTED", "INCORRECT_CATEGORY"),
    ],
)
def test_template_status_update(name: str, state: str, reason: str | None) -> None:
    [got] = events(name)
    assert got == TemplateStatusUpdate(
        name="wochen_news",
        language="de",
        status=state,
        timestamp=datetime(2025, 6, 8, 21, 3, 20, tzinfo=UTC),  # the entry's time
        reason=reason,
    )


def test_template_status_without_entry_time_is_stamped_now() -> None:
    value = {
        "event": "DISABLED",
        "message_template_name": "wochen_news",
        "message_template_language": "de",
        "reason": "NONE",
    }
    before = datetime.now(UTC)
    [got] = webhook.parse(envelope({"field": "message_template_status_update", "value": value}))
    assert isinstance(got, TemplateStatusUpdate)
    assert (got.status, got.reason) == ("DISABLED", None)
    assert before <= got.timestamp <= datetime.now(UTC)


# --- what is ignored or refused ---------------------------------------------------------


def test_other_fields_are_ignored() -> None:
    assert events("other_field__account_update") == []


def test_changes_for_another_number_of_the_app_are_ignored() -> None:
    assert events("other_number__foreign_phone_number_id") == []


def test_without_a_number_every_change_counts() -> None:
    [got] = events("other_number__foreign_phone_number_id", phone_number_id=None)
    assert isinstance(got, InboundMessage) and got.text == "Hallo"


@pytest.mark.parametrize(
    ("name", "match"),
    [("malformed__not_json", "not JSON"), ("malformed__wrong_object", "not a WhatsApp")],
)
def test_malformed_fixture_is_refused(name: str, match: str) -> None:
    with pytest.raises(MalformedWebhook, match=match):
        webhook.parse(body(name))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"[]",
        b'"whatsapp_business_account"',
        b'{"entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {"id": "2002"}}',
        b"[" * 100_000,
    ],
    ids=[
        "empty",
        "not-utf8",
        "list",
        "string",
        "no-object",
        "no-entry",
        "entry-not-list",
        "deeply-nested",
    ],
)
def test_not_an_envelope_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        webhook.parse(raw)


def test_malformed_webhook_is_a_value_error() -> None:
    assert issubclass(MalformedWebhook, ValueError)


def test_every_fixture_follows_the_naming_rule_and_is_json() -> None:
    names = sorted(path.stem for path in FIXTURES.glob("*.json"))
    assert len(names) >= 35
    for name in names:
        event, _, variant = name.partition("__")
        assert event and variant, name
        if name != "malformed__not_json":
            json.loads(body(name))


# --- property: nothing but MalformedWebhook ever escapes ---------------------------------

_KEYS = [
    "entry", "changes", "field", "value", "time", "metadata", "phone_number_id", "contacts",
    "profile", "name", "wa_id", "messages", "statuses", "user_preferences", "from", "id",
    "timestamp", "type", "text", "body", "caption", "image", "audio", "document", "sticker",
    "location", "latitude", "longitude", "reaction", "emoji", "message_id", "interactive",
    "button_reply", "list_reply", "title", "description", "button", "payload", "context",
    "referral", "errors", "code", "error_data", "details", "status", "recipient_id",
    "biz_opaque_callback_data", "category", "value", "event", "message_template_name",
    "message_template_language", "reason", "other_info", "formatted_name",
]  # fmt: skip
_WORDS = [
    "messages", "user_preferences", "message_template_status_update", "text", "image",
    "location", "contacts", "reaction", "interactive", "button", "button_reply", "list_reply",
    "unsupported", "sent", "delivered", "read", "played", "failed", "deleted",
    "marketing_messages", "stop", "resume", "NONE", "1001", "1749416383", "99999999999999999999",
]  # fmt: skip
_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(_WORDS)
)
_json = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=40,
)

_VALID = [
    json.loads(body(path.stem))
    for path in sorted(FIXTURES.glob("*.json"))
    if "malformed" not in path.stem
]


def _paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into a JSON document, the document itself first."""
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_paths(child, (*path, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_paths(child, (*path, index)))
    return found


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid fixture with a few subtrees inside ``entry`` replaced by random JSON or removed.

    Random JSON alone rarely nests four levels deep in the right places; this reaches every
    reader with one broken field among well-formed ones.
    """
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from([p for p in _paths(doc) if len(p) >= 2]))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_json)
    return doc


def _check(doc: Any, number: str | None) -> None:
    for event in webhook.parse(json.dumps(doc).encode(), phone_number_id=number):
        assert isinstance(
            event, InboundMessage | StatusUpdate | ConsentUpdate | TemplateStatusUpdate
        )
        assert event.timestamp.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(entry=st.lists(_json, max_size=3), number=st.none() | st.just(NUMBER))
def test_parse_never_raises_on_random_entries(entry: list[Any], number: str | None) -> None:
    _check({"object": "whatsapp_business_account", "entry": entry}, number)


@settings(max_examples=200, deadline=None)
@given(doc=_mutated(), number=st.none() | st.just(NUMBER))
def test_parse_never_raises_on_broken_fixtures(doc: dict[str, Any], number: str | None) -> None:
    _check(doc, number)


@settings(max_examples=200, deadline=None)
@given(data=_json)
def test_parse_raises_only_malformed_webhook_on_any_json(data: Any) -> None:
    try:
        parsed = webhook.parse(json.dumps(data).encode())
    except MalformedWebhook:
        return
    assert isinstance(parsed, list)
