"""Our WhatsApp client (``WhatsAppChannel`` / ``GraphClient``) against the fake Graph API.

Every test talks HTTP over loopback to ``rundfunk.testing.fake_graph.FakeGraph``, which
validates each request against the documented Cloud API shapes and answers with the
documented success and error bodies; faults (injected error codes, dropped
connections, the 24-hour window) are the fake's knobs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from rundfunk.channels.base import (
    Choice,
    InboundMessage,
    Menu,
    OutboundMessage,
    SignatureError,
    TemplateSend,
)
from rundfunk.channels.whatsapp.channel import WhatsAppChannel
from rundfunk.channels.whatsapp.client import WhatsAppConfig
from rundfunk.channels.whatsapp.errors import MARKETING_CAP_RETRY_SECONDS
from rundfunk.channels.whatsapp.webhook import SIGNATURE_HEADER, sign
from rundfunk.core.errors import (
    ChannelDisabledError,
    ChannelError,
    OptedOutError,
    OutcomeUnknownError,
    PauseBroadcastError,
    PermanentError,
    RateLimitedError,
    RateScope,
    RetryableError,
    TemplateRequiredError,
)
from rundfunk.testing.fake_graph import FakeGraph, SentMessage

TOKEN = "EAAG-test-access-token"
SECRET = "app-secret-0123"
PHONE = "1001"
WABA = "2002"
ANNA = "4915112345678"


@dataclass
class World:
    graph: FakeGraph
    channel: WhatsAppChannel
    base_url: str


def config_for(base_url: str, *, access_token: str = TOKEN) -> WhatsAppConfig:
    return WhatsAppConfig(
        phone_number_id=PHONE,
        waba_id=WABA,
        access_token=access_token,
        app_secret=SECRET,
        verify_token="v" * 16,
        api_base_url=base_url,
        api_version="v23.0",
    )


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    graph = FakeGraph(
        access_token=TOKEN, app_secret=SECRET, phone_number_id=PHONE, waba_id=WABA, seed=7
    )
    base_url = await graph.start()
    # Most tests are about shapes and errors, not the 24-hour window (test of its own).
    graph.enforce_window = False
    channel = WhatsAppChannel(3, config_for(base_url))
    try:
        yield World(graph, channel, base_url)
    finally:
        await channel.close()
        await graph.close()


def text(body: str = "Hallo Anna", **extra: Any) -> OutboundMessage:
    return OutboundMessage(address=ANNA, text=body, callback_data="d:42", **extra)


def only_sent(graph: FakeGraph) -> SentMessage:
    assert len(graph.sent) == 1, graph.sent
    return graph.sent[0]


async def send_error(channel: WhatsAppChannel, message: OutboundMessage) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await channel.send(message)
    return caught.value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest_asyncio.fixture
async def stub_server() -> AsyncIterator[list[web.AppRunner]]:
    """Runners of tiny one-route apps started by a test; cleaned up afterwards."""
    runners: list[web.AppRunner] = []
    yield runners
    for runner in runners:
        await runner.cleanup()


async def serve(runners: list[web.AppRunner], response: web.Response) -> str:
    async def messages(request: web.Request) -> web.Response:
        await request.read()
        return response

    app = web.Application()
    app.router.add_post(f"/v23.0/{PHONE}/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    runners.append(runner)
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


# --- 1. text ------------------------------------------------------------------------------


async def test_text_send_returns_the_wamid_and_sends_our_fields(world: World) -> None:
    result = await world.channel.send(text("Neu: https://example.org", preview_url=True))

    sent = only_sent(world.graph)
    assert result.provider_message_id == sent.wamid
    assert sent.wamid.startswith("wamid.")
    assert sent.to == ANNA
    assert sent.callback_data == "d:42"
    assert sent.payload["messaging_product"] == "whatsapp"
    assert sent.payload["to"] == ANNA
    assert sent.payload["biz_opaque_callback_data"] == "d:42"
    assert sent.payload["type"] == "text"
    assert sent.payload["text"] == {"body": "Neu: https://example.org", "preview_url": True}


async def test_text_send_without_preview_sends_preview_url_false(world: World) -> None:
    await world.channel.send(text("Hallo"))

    assert only_sent(world.graph).payload["text"] == {"body": "Hallo", "preview_url": False}


# --- 2. media and interactive ---------------------------------------------------------------


async def test_image_by_link_with_caption_is_accepted(world: World) -> None:
    link = "https://example.org/bilder/plakat.jpg"
    result = await world.channel.send(text("Das Plakat", media_url=link))

    sent = only_sent(world.graph)
    assert result.provider_message_id == sent.wamid
    assert sent.type == "image"
    assert sent.payload["image"] == {"link": link, "caption": "Das Plakat"}


async def test_document_by_uploaded_media_id_is_accepted(world: World) -> None:
    pdf = b"%PDF-1.4 Rundfunk Programmheft"
    media_id = await world.channel.client.upload_media(
        pdf, mime_type="application/pdf", filename="a.pdf"
    )
    assert world.graph.media[media_id] == pdf
    assert world.graph.media_types[media_id] == "application/pdf"

    result = await world.channel.send(
        text("Programmheft", media_id=media_id, media_kind="document", filename="a.pdf")
    )

    sent = only_sent(world.graph)
    assert result.provider_message_id == sent.wamid
    assert sent.type == "document"
    assert sent.payload["document"] == {
        "id": media_id,
        "caption": "Programmheft",
        "filename": "a.pdf",
    }


async def test_interactive_list_of_five_choices_is_accepted(world: World) -> None:
    choices = tuple(
        Choice(id=f"START topic{n}", title=f"Thema {n}", description=f"Alles über Thema {n}")
        for n in range(1, 6)
    )
    menu = Menu(choices=choices, button="Themen", section="Abonnieren")
    result = await world.channel.send(text("Was interessiert dich?", menu=menu))

    sent = only_sent(world.graph)
    assert result.provider_message_id == sent.wamid
    assert sent.type == "interactive"
    interactive = sent.payload["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"] == {"text": "Was interessiert dich?"}
    assert interactive["action"]["button"] == "Themen"
    [section] = interactive["action"]["sections"]
    assert section["title"] == "Abonnieren"
    assert [row["id"] for row in section["rows"]] == [c.id for c in choices]
    assert section["rows"][0] == {
        "id": "START topic1",
        "title": "Thema 1",
        "description": "Alles über Thema 1",
    }


# --- 3. templates -------------------------------------------------------------------------


async def test_template_with_body_parameters_is_accepted(world: World) -> None:
    world.graph.add_template("news", body="Hallo {{1}}, heute um {{2}}.")
    message = OutboundMessage(
        address=ANNA,
        text=None,
        callback_data="d:7",
        template=TemplateSend(name="news", language="de", body=("Anna", "18 Uhr")),
    )
    result = await world.channel.send(message)

    sent = only_sent(world.graph)
    assert result.provider_message_id == sent.wamid
    assert sent.type == "template"
    assert sent.payload["template"] == {
        "name": "news",
        "language": {"code": "de"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Anna"},
                    {"type": "text", "text": "18 Uhr"},
                ],
            }
        ],
    }


async def test_template_with_wrong_parameter_count_is_permanent_132000(world: World) -> None:
    world.graph.add_template("news", body="Hallo {{1}}, hier sind die Neuigkeiten.")
    message = OutboundMessage(
        address=ANNA,
        text=None,
        template=TemplateSend(name="news", language="de", body=("Anna", "zu viel")),
    )
    error = await send_error(world.channel, message)

    assert type(error) is PermanentError
    assert error.code == "132000"
    assert world.graph.sent == []


async def test_paused_template_pauses_the_broadcast(world: World) -> None:
    world.graph.add_template("angebot", status="PAUSED")
    message = OutboundMessage(
        address=ANNA,
        text=None,
        template=TemplateSend(name="angebot", language="de", body=("Anna",)),
    )
    error = await send_error(world.channel, message)

    assert type(error) is PauseBroadcastError
    assert error.code == "132015"
    assert world.graph.sent == []


# --- 4. error codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        (130429, 400, RateLimitedError),
        (130429, 429, RateLimitedError),
        (131056, 400, RateLimitedError),
        (131026, 400, PermanentError),
        (131050, 400, OptedOutError),
        (131049, 400, RetryableError),
        (190, 400, ChannelDisabledError),
        (131000, 400, RetryableError),
    ],
)
async def test_injected_error_is_mapped_by_code(
    world: World, code: int, http_status: int, expected: type[ChannelError]
) -> None:
    world.graph.inject(code, 1.0, http_status=http_status)

    error = await send_error(world.channel, text())

    assert type(error) is expected
    assert error.code == str(code)
    assert world.graph.sent == []
    if code == 130429:
        assert isinstance(error, RateLimitedError)
        assert error.scope is RateScope.SENDER
    elif code == 131056:
        assert isinstance(error, RateLimitedError)
        assert error.scope is RateScope.RECIPIENT
    elif code == 131049:
        assert isinstance(error, RetryableError)
        assert error.retry_after is not None
        assert error.retry_after >= 24 * 3600
        assert error.retry_after == MARKETING_CAP_RETRY_SECONDS


# --- 5. credentials -----------------------------------------------------------------------


async def test_wrong_access_token_disables_the_channel(world: World) -> None:
    wrong = WhatsAppChannel(3, config_for(world.base_url, access_token="revoked-token"))
    try:
        error = await send_error(wrong, text())
    finally:
        await wrong.close()

    assert type(error) is ChannelDisabledError
    assert error.code == "190"
    assert world.graph.sent == []


# --- 6.-8. network trouble ----------------------------------------------------------------


async def test_dropped_connection_is_outcome_unknown(world: World) -> None:
    world.graph.network_error_share = 1.0
    world.graph.network_error_accepts = False

    error = await send_error(world.channel, text())

    assert isinstance(error, OutcomeUnknownError)
    assert error.code == "network"
    assert error.retry_after is None  # how long to wait is requeue_expired's settle time
    assert world.graph.requests["messages"] == 1  # the request did arrive
    assert world.graph.sent == []


async def test_dropped_answer_of_an_accepted_send_is_outcome_unknown(world: World) -> None:
    world.graph.network_error_share = 1.0
    world.graph.network_error_accepts = True

    error = await send_error(world.channel, text())

    assert isinstance(error, OutcomeUnknownError)
    assert error.retry_after is None  # how long to wait is requeue_expired's settle time
    # The platform has the message: resending blindly would deliver it twice.
    sent = only_sent(world.graph)
    assert sent.to == ANNA
    assert sent.callback_data == "d:42"


async def test_nothing_listening_is_retryable_not_outcome_unknown() -> None:
    channel = WhatsAppChannel(3, config_for(f"http://127.0.0.1:{free_port()}"))
    try:
        error = await send_error(channel, text())
    finally:
        await channel.close()

    assert isinstance(error, RetryableError)
    assert not isinstance(error, OutcomeUnknownError)
    assert not isinstance(error, RateLimitedError)
    assert error.code == "network"


async def test_non_json_502_is_retryable(stub_server: list[web.AppRunner]) -> None:
    base_url = await serve(
        stub_server, web.Response(status=502, text="<html>502 Bad Gateway</html>")
    )
    channel = WhatsAppChannel(3, config_for(base_url))
    try:
        error = await send_error(channel, text())
    finally:
        await channel.close()

    assert type(error) is RetryableError
    assert error.code == "http_5xx"


async def test_200_without_messages_is_outcome_unknown(stub_server: list[web.AppRunner]) -> None:
    accepted = {"messaging_product": "whatsapp", "contacts": [{"input": ANNA, "wa_id": ANNA}]}
    base_url = await serve(stub_server, web.json_response(accepted))
    channel = WhatsAppChannel(3, config_for(base_url))
    try:
        error = await send_error(channel, text())
    finally:
        await channel.close()

    assert isinstance(error, OutcomeUnknownError)
    assert error.retry_after is None  # how long to wait is requeue_expired's settle time


# --- 9. the 24-hour window ----------------------------------------------------------------


async def test_free_text_outside_the_window_needs_a_template(world: World) -> None:
    world.graph.enforce_window = True

    error = await send_error(world.channel, text())

    assert type(error) is TemplateRequiredError
    assert error.code == "131047"
    assert world.graph.sent == []

    world.graph.open_window(ANNA)
    result = await world.channel.send(text())

    assert result.provider_message_id == only_sent(world.graph).wamid


# --- 10. template list --------------------------------------------------------------------


async def test_templates_follow_the_paging_cursors(world: World) -> None:
    names = [f"vorlage_{n:03d}" for n in range(130)]
    for name in names:
        world.graph.add_template(name, category="UTILITY")

    found = await world.channel.templates()

    assert [t["name"] for t in found] == names
    assert all(t["status"] == "APPROVED" and t["language"] == "de" for t in found)
    # 130 templates at our page size of 100: the first page and the one its cursor names.
    assert world.graph.requests["message_templates"] == 2


# --- 11. business profile -----------------------------------------------------------------


async def test_profile_reads_the_fields_without_messaging_product(world: World) -> None:
    world.graph.profile.update(about="Rundfunk Kiez", email="hallo@example.org")

    profile = await world.channel.client.profile()

    assert "messaging_product" not in profile
    assert profile == world.graph.profile
    assert profile["about"] == "Rundfunk Kiez"


async def test_update_profile_changes_the_fakes_profile(world: World) -> None:
    await world.channel.client.update_profile(
        {"about": "Neu", "websites": ["https://example.org/impressum"]}
    )

    assert world.graph.profile["about"] == "Neu"
    assert world.graph.profile["websites"] == ["https://example.org/impressum"]
    assert (await world.channel.client.profile())["about"] == "Neu"


# --- 12. webhooks -------------------------------------------------------------------------


def inbound_envelope(*phone_number_ids: str) -> bytes:
    changes = [
        {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "4915123456789", "phone_number_id": pid},
                "contacts": [{"profile": {"name": "Anna"}, "wa_id": ANNA}],
                "messages": [
                    {
                        "from": ANNA,
                        "id": f"wamid.in.{pid}",
                        "timestamp": "1749416383",
                        "type": "text",
                        "text": {"body": f"START für {pid}"},
                    }
                ],
            },
        }
        for pid in phone_number_ids
    ]
    envelope = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": changes}]}
    return json.dumps(envelope).encode()


async def test_verify_accepts_the_app_secrets_signature(world: World) -> None:
    body = inbound_envelope(PHONE)

    world.channel.verify({SIGNATURE_HEADER: sign(SECRET, body)}, body)
    world.channel.verify({SIGNATURE_HEADER.lower(): sign(SECRET, body)}, body)


async def test_verify_rejects_a_wrong_signature(world: World) -> None:
    body = inbound_envelope(PHONE)

    with pytest.raises(SignatureError):
        world.channel.verify({SIGNATURE_HEADER: sign("another-secret", body)}, body)
    with pytest.raises(SignatureError):
        world.channel.verify({SIGNATURE_HEADER: sign(SECRET, body)}, body + b" ")
    with pytest.raises(SignatureError):
        world.channel.verify({}, body)


async def test_parse_ignores_a_change_for_another_number(world: World) -> None:
    events = world.channel.parse(inbound_envelope("9999", PHONE))

    [event] = events
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == f"wamid.in.{PHONE}"
    assert event.text == f"START für {PHONE}"
    assert event.name == "Anna"


# --- 13. concurrency ----------------------------------------------------------------------


async def test_concurrent_sends_over_the_keep_alive_pool(world: World) -> None:
    world.graph.latency = 0.01
    messages = [
        OutboundMessage(address=f"49151{n:08d}", text=f"Nr. {n}", callback_data=f"d:{n}")
        for n in range(200)
    ]

    started = time.monotonic()
    results = await asyncio.gather(*(world.channel.send(m) for m in messages))
    elapsed = time.monotonic() - started

    wamids = [r.provider_message_id for r in results]
    assert len(set(wamids)) == 200
    assert len(world.graph.sent) == 200
    by_wamid = {s.wamid: s for s in world.graph.sent}
    assert set(by_wamid) == set(wamids)
    for message, wamid in zip(messages, wamids, strict=True):
        assert by_wamid[wamid].callback_data == message.callback_data
        assert by_wamid[wamid].to == message.address
    # One at a time it would take at least 200 x 10 ms: the requests overlapped.
    assert elapsed < 2.0
    assert world.graph.requests["messages"] == 200
