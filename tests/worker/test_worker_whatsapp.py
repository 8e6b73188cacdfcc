"""The dispatcher on a real WhatsApp channel against the fake Graph API on loopback.

Everything of Rundfunk's own runs for real: a SQLite file, the channel row built into a
``WhatsAppChannel`` by the registry, the dispatcher loop, the Graph client over HTTP.
Only the platform is a stand-in (``rundfunk.testing.fake_graph``). Status webhooks are
the fake's own signed POSTs, caught by a small receiver and applied when the test says
so, or Graph-shaped status entries run through the real webhook parser.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from rundfunk.channels.base import InboundMessage, StatusUpdate
from rundfunk.channels.whatsapp import webhook as wire
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.core.ratelimit import Rate
from rundfunk.db.tables import audit_log, channels, contacts, deliveries, messages
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views, broadcasts, dispatch, inbound
from rundfunk.services import whatsapp as whatsapp_service
from rundfunk.services.channels import create_channel, update_channel
from rundfunk.services.outbox import queue_message
from rundfunk.services.outcomes import RecordResult
from rundfunk.services.secrets import SecretBox
from rundfunk.services.statuses import apply_statuses
from rundfunk.testing.fake_graph import FakeGraph, SentMessage
from rundfunk.worker import limiter as limiter_module
from rundfunk.worker.limiter import InProcessLimiter
from service_world import World, open_world, running, wait_until

TEMPLATE = "news_update"
BOX = SecretBox("test key")  # the key open_world's registry opens channel credentials with
DAY = timedelta(hours=24)


# --- the platform side -------------------------------------------------------------------


class Receiver:
    """Catches the fake's signed status webhooks; the test decides when to apply them."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        return web.Response(status=200)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(access_token="EAAG-test-token", app_secret="app-secret-test", seed=7)
    await fake.start()
    fake.add_template(TEMPLATE, "de", body="Hallo {{1}}, heute: {{2}}")
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def world(tmp_path: Path, graph: FakeGraph) -> AsyncIterator[World]:
    """The operator's Graph address is the fake's (RUNDFUNK_WHATSAPP_API_BASE_URL)."""
    async with open_world(tmp_path, whatsapp_api_base_url=graph.base_url) as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        await hook.close()


# --- Rundfunk side helpers ---------------------------------------------------------------


@dataclass
class WhatsApp:
    """One connected WhatsApp number of the test workspace, pointing at the fake."""

    world: World
    graph: FakeGraph
    channel_id: int
    _inbound: int = field(default=0)

    async def subscribe(self, wa_id: str, name: str | None = None) -> int:
        """The person writes START (the parsed webhook, carried out); returns the contact."""
        return (await self.writes(wa_id, "START", name=name)).contact_id

    async def writes(self, wa_id: str, text: str, name: str | None = None) -> inbound.Outcome:
        self._inbound += 1
        self.graph.open_window(wa_id)  # they wrote: the fake lets free text through
        return await inbound.receive(
            self.world.db,
            channel_id=self.channel_id,
            event=InboundMessage(
                address=wa_id,
                provider_message_id=f"wamid.in-{self._inbound}",
                timestamp=utcnow(),
                text=text,
                name=name,
            ),
        )

    async def broadcast(self, *body_parameters: str) -> int:
        created = await broadcasts.create_broadcast(
            self.world.db,
            actor=self.world.owner,
            channel_id=self.channel_id,
            text=None,
            template={"name": TEMPLATE, "language": "de", "body_parameters": list(body_parameters)},
        )
        await broadcasts.send_broadcast(
            self.world.db, actor=self.world.owner, broadcast_id=created["id"]
        )
        return int(created["id"])

    async def stats(self, broadcast_id: int) -> dict[str, int]:
        found = await broadcast_views.get_broadcast(
            self.world.db, actor=self.world.owner, broadcast_id=broadcast_id
        )
        stats: dict[str, int] = found["stats"]
        return stats

    async def delivery(self, delivery_id: int) -> Any:
        [row] = await self.world.rows(select(deliveries).where(deliveries.c.id == delivery_id))
        return row

    async def message(self, message_id: int) -> Any:
        [row] = await self.world.rows(select(messages).where(messages.c.id == message_id))
        return row

    def copies(self) -> Counter[str]:
        """Broadcast sends the fake accepted, by callback data (``d:<delivery id>``)."""
        return Counter(
            m.callback_data for m in self.graph.sent if (m.callback_data or "").startswith("d:")
        )

    def template_sends(self) -> list[SentMessage]:
        return [m for m in self.graph.sent if m.type == "template"]

    async def statuses(self, posts: list[tuple[dict[str, str], bytes]]) -> list[StatusUpdate]:
        """The receiver's POSTs, signature-checked and parsed by the real channel."""
        channel = await self.world.registry.whatsapp(self.channel_id)
        found: list[StatusUpdate] = []
        for headers, body in posts:
            channel.verify(headers, body)
            found += [e for e in channel.parse(body) if isinstance(e, StatusUpdate)]
        return found

    async def apply(self, *updates: StatusUpdate) -> RecordResult:
        result = RecordResult()
        async with self.world.db.write() as conn:
            await apply_statuses(
                conn, channel_id=self.channel_id, updates=list(updates), result=result
            )
        return result


async def connect(world: World, graph: FakeGraph, **config: Any) -> WhatsApp:
    """Connect the fake's number as a channel (as an admin would) and sync its templates."""
    assert graph.base_url is not None
    created = await create_channel(
        world.db,
        actor=world.owner,
        kind="whatsapp",
        name="Newsroom",
        config={
            "phone_number_id": graph.phone_number_id,
            "waba_id": graph.waba_id,
            "access_token": graph.access_token,
            "app_secret": graph.app_secret,
            "throughput": 1000,
            **config,
        },
        box=BOX,
    )
    channel_id = int(created["id"])
    await whatsapp_service.sync_templates(
        world.db, world.registry, actor=world.owner, channel_id=channel_id
    )
    return WhatsApp(world, graph, channel_id)


def failed_status(
    graph: FakeGraph, sent: SentMessage, code: int, *, at: datetime | None = None
) -> StatusUpdate:
    """A ``failed`` status for ``sent`` as the Cloud API posts it, through the real parser."""
    when = at or datetime.now(UTC)
    status = {
        "id": sent.wamid,
        "status": "failed",
        "timestamp": str(int(when.timestamp())),
        "recipient_id": sent.to,
        "biz_opaque_callback_data": sent.callback_data,
        "errors": [{"code": code, "title": f"error {code}", "error_data": {"details": "x"}}],
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": graph.waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": graph.phone_number_id},
                            "statuses": [status],
                        },
                    }
                ],
            }
        ],
    }
    [update] = wire.parse(json.dumps(envelope).encode(), phone_number_id=graph.phone_number_id)
    assert isinstance(update, StatusUpdate) and update.error is not None
    return update


async def _recorded_as_unknown(wa: WhatsApp, delivery_id: int) -> bool:
    """The dispatcher recorded the broken send (the row carries the network error)."""
    row = await wa.delivery(delivery_id)
    return bool(row.error_code == "network")


# --- 1, 2: a send whose answer was lost --------------------------------------------------


async def test_lost_answer_waits_for_the_callback_and_is_never_resent(
    world: World, graph: FakeGraph, receiver: Receiver
) -> None:
    wa = await connect(world, graph)
    await wa.subscribe("4915100000001", name="Anna")
    await world.drain_outbox()
    graph.webhook_url = await receiver.start()
    # WhatsApp takes the message, then the connection breaks before the answer arrives.
    graph.network_error_share, graph.network_error_accepts = 1.0, True
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    [row] = await world.deliveries_of(broadcast_id)

    async with running(world.dispatcher()):
        await wait_until(lambda: _recorded_as_unknown(wa, row.id), what="unknown outcome")
        await graph.drain()  # the fake's statuses are at the receiver, not yet applied
        # Neither the dispatcher nor the normal requeue pass touches it meanwhile.
        assert await dispatch.requeue_expired(world.db, settle_seconds=60) == 0
        await asyncio.sleep(0.3)

    held = await wa.delivery(row.id)
    assert (held.status, held.provider_message_id, held.attempts) == ("sending", None, 1)
    assert wa.copies() == Counter({f"d:{row.id}": 1})
    [sent] = wa.template_sends()
    assert sent.callback_data == f"d:{row.id}"

    # The status webhook names the row by its callback data: it settles the row.
    updates = await wa.statuses(receiver.posts)
    assert [u.callback_data for u in updates if u.status is DeliveryStatus.SENT] == [f"d:{row.id}"]
    await wa.apply(*(u for u in updates if u.status is DeliveryStatus.SENT))
    settled = await wa.delivery(row.id)
    assert (settled.status, settled.provider_message_id) == ("sent", sent.wamid)
    assert settled.sent_at is not None and settled.lease_until is None

    # Nothing sends it again: not the requeue pass, not the dispatcher.
    graph.network_error_share = 0.0
    assert await dispatch.requeue_expired(world.db, settle_seconds=0) == 0
    async with running(world.dispatcher()):
        await asyncio.sleep(0.3)
    assert wa.copies() == Counter({f"d:{row.id}": 1})
    assert (await wa.delivery(row.id)).status == "sent"


async def test_lost_request_is_sent_again_once_the_settle_time_passed(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph)
    await wa.subscribe("4915100000001", name="Anna")
    await world.drain_outbox()
    # The connection breaks and WhatsApp never got the message: no callback will come.
    graph.network_error_share, graph.network_error_accepts = 1.0, False
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    [row] = await world.deliveries_of(broadcast_id)
    settle = 0.5

    async with running(world.dispatcher()):
        await wait_until(lambda: _recorded_as_unknown(wa, row.id), what="unknown outcome")
        assert await dispatch.requeue_expired(world.db, settle_seconds=settle) == 0
        assert (await wa.delivery(row.id)).status == "sending"
        assert wa.copies() == Counter()

        graph.network_error_share = 0.0
        await asyncio.sleep(settle + 0.1)
        assert await dispatch.requeue_expired(world.db, settle_seconds=settle) == 1
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    final = await wa.delivery(row.id)
    [sent] = wa.template_sends()
    assert (final.status, final.provider_message_id, final.attempts) == ("sent", sent.wamid, 2)
    assert wa.copies() == Counter({f"d:{row.id}": 1})


# --- 3: embedded start -------------------------------------------------------------------


async def test_embedded_start_requeues_sandbox_rows_but_lets_whatsapp_rows_settle(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph)
    await world.subscriber("+491")
    await world.subscriber("+492")
    await wa.subscribe("4915100000001", name="Anna")
    await world.drain_outbox()
    sandbox_broadcast = await world.send("News")
    wa_broadcast = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    await queue_conversation(wa, "4915100000001", "Hallo Anna")
    # A process claimed everything and died mid-send; its leases have already run out.
    claimed = await dispatch.claim(world.db, limit=100, lease_seconds=0)
    assert len(claimed) == 4
    await asyncio.sleep(0.01)

    requeued = await dispatch.requeue_expired(world.db, everything=True, settle_seconds=60)

    assert requeued == 2
    assert {r.status for r in await world.deliveries_of(sandbox_broadcast)} == {"queued"}
    assert {r.status for r in await world.deliveries_of(wa_broadcast)} == {"sending"}
    [wa_message] = await world.rows(
        select(messages.c.status)
        .where(messages.c.channel_id == wa.channel_id, messages.c.direction == "out")
        .order_by(messages.c.id.desc())
        .limit(1)
    )
    assert wa_message.status == "sending"  # a WhatsApp reply waits for its callback too


async def queue_conversation(wa: WhatsApp, wa_id: str, text: str) -> int:
    """An agent's free-text message to this person, queued for the dispatcher."""
    outcome = await wa.writes(wa_id, "Eine Frage")  # opens the conversation and the window
    async with wa.world.db.write() as conn:
        return await queue_message(
            conn,
            workspace_id=wa.world.workspace_id,
            channel_id=wa.channel_id,
            contact_id=outcome.contact_id,
            conversation_id=outcome.conversation_id,
            text=text,
        )


# --- 4: the pair guard -------------------------------------------------------------------


async def test_pair_guard_defers_a_second_message_to_the_same_person(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph, pair_interval_seconds=2, pair_burst=1)
    await wa.subscribe("4915100000001", name="Anna")
    await wa.subscribe("4915100000002", name="Ben")
    await world.drain_outbox()
    graph.reset()  # only the messages below count; knobs and templates stay
    anna = [
        await queue_conversation(wa, "4915100000001", "Erste Antwort"),
        await queue_conversation(wa, "4915100000001", "Zweite Antwort"),
    ]
    ben = await queue_conversation(wa, "4915100000002", "Antwort an Ben")

    async def one_held_back() -> bool:
        rows = [await wa.message(i) for i in anna]
        return sorted(r.status for r in rows) == ["queued", "sent"]

    async with running(world.dispatcher()):
        await wait_until(one_held_back, what="one of Anna's messages held back")
        [held] = [r for r in [await wa.message(i) for i in anna] if r.status == "queued"]
        assert "pair rate" in (held.error_reason or ""), held.error_reason
        assert held.attempts == 0  # held back before sending: no attempt charged
        assert (await wa.message(ben)).status == "sent"

        async def all_sent() -> bool:
            return [(await wa.message(i)).status for i in [*anna, ben]] == ["sent"] * 3

        await wait_until(all_sent, what="Anna's second message sent")

    to_anna = graph.received("4915100000001")
    [to_ben] = graph.received("4915100000002")
    assert len(to_anna) == 2
    assert to_anna[1].at - to_anna[0].at >= 1.8, [m.at for m in to_anna]
    assert to_ben.at - to_anna[0].at < 1.0  # another person is not held up
    assert {m.payload["text"]["body"] for m in to_anna} == {"Erste Antwort", "Zweite Antwort"}
    assert [(await wa.message(i)).attempts for i in anna] == [1, 1]


# --- 5: the daily recipient cap ----------------------------------------------------------


async def test_daily_recipient_cap_defers_new_people_and_lets_reached_ones_through(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph, daily_recipient_cap=3)
    people = {f"49151000000{n:02}": f"Person {n}" for n in range(5)}
    contact_of = {wa_id: await wa.subscribe(wa_id, name=name) for wa_id, name in people.items()}
    await world.drain_outbox()
    first = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")

    async def split(broadcast_id: int, sent: int, deferred: int) -> bool:
        stats = await wa.stats(broadcast_id)
        return (stats["sent"], stats["deferred"], stats["queued"]) == (sent, deferred, 0)

    async with running(world.dispatcher()):
        await wait_until(lambda: split(first, 3, 2), what="3 sent, 2 deferred")
        await asyncio.sleep(0.2)  # nothing more happens
    assert await split(first, 3, 2)
    assert len(wa.copies()) == 3 and set(wa.copies().values()) == {1}

    rows = await world.deliveries_of(first)
    reached = {r.contact_id for r in rows if r.status == "sent"}
    held = [r for r in rows if r.status == "queued"]
    oldest = min(r.sent_at for r in rows if r.sent_at is not None)
    for row in held:
        assert row.error_code == "messaging_limit"
        assert "daily limit of 3" in row.error_reason
        assert row.attempts == 0  # held back, not tried
        assert row.next_attempt_at > utcnow() + timedelta(minutes=5)

    # Later (pretend their retry time came): the window is still full, so they wait
    # for the oldest send of the window to age out.
    async with world.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_([r.id for r in held]))
            .values(next_attempt_at=utcnow())
        )

    async def held_for_the_window() -> bool:
        rows = [await wa.delivery(r.id) for r in held]
        return all(r.next_attempt_at > utcnow() + timedelta(hours=23) for r in rows)

    async with running(world.dispatcher()):
        await wait_until(held_for_the_window, what="held until the window frees")
    for row in [await wa.delivery(r.id) for r in held]:
        assert row.status == "queued" and row.error_code == "messaging_limit"
        assert abs(row.next_attempt_at - (oldest + DAY)) < timedelta(seconds=2)
    assert await split(first, 3, 2)
    assert len(wa.copies()) == 3

    # A second broadcast: the three people reached today plus one new subscriber.
    for wa_id, contact_id in contact_of.items():
        if contact_id not in reached:
            await wa.writes(wa_id, "STOP")
    newcomer = await wa.subscribe("4915100000099", name="Neu")
    second = await wa.broadcast("{{ contact.name }}", "Haushalt")

    async with running(world.dispatcher()):
        await wait_until(lambda: split(second, 3, 1), what="3 sent, 1 deferred")
    rows = await world.deliveries_of(second)
    assert {r.contact_id for r in rows if r.status == "sent"} == reached  # cost nothing
    [deferred] = [r for r in rows if r.status == "queued"]
    assert deferred.contact_id == newcomer and deferred.error_code == "messaging_limit"
    assert abs(deferred.next_attempt_at - (oldest + DAY)) < timedelta(seconds=2)
    assert len(wa.copies()) == 6 and set(wa.copies().values()) == {1}
    assert "4915100000099" not in {m.to for m in wa.template_sends()}


# --- 6: 130429 slows the number down ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _interval(limiter: InProcessLimiter, key: int, rate: Rate) -> float:
    """Seconds between two sends the limiter grants right now (burst 1: the spacing)."""
    first = limiter.reserve(key, rate)
    return limiter.reserve(key, rate) - first


def test_a_burst_of_130429_halves_the_rate_once_and_cuts_stop_at_an_eighth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(limiter_module, "time", clock)
    limiter, rate = InProcessLimiter(), Rate(80, burst=1)
    assert _interval(limiter, 1, rate) == pytest.approx(1 / 80)

    # Fifty sends in flight all come back with 130429 within one second: one signal.
    for _ in range(50):
        limiter.slow_down(1, rate)
        clock.now += 0.02
    assert _interval(limiter, 1, rate) == pytest.approx(1 / 40)

    # Still rejected, one cut per gap: 20/s, 10/s, and never below 80/8 = 10/s.
    seen = []
    for _ in range(6):
        clock.now += InProcessLimiter.CUT_GAP_SECONDS
        limiter.slow_down(1, rate)
        seen.append(round(1 / _interval(limiter, 1, rate), 6))
    assert seen == [20, 10, 10, 10, 10, 10]
    assert _interval(limiter, 2, rate) == pytest.approx(1 / 80)  # other numbers: untouched

    clock.now += 61  # no rejection for a minute: full speed again
    assert _interval(limiter, 1, rate) == pytest.approx(1 / 80)


# --- 7: failed statuses act like the same error at send time -------------------------------


async def test_failed_statuses_retry_pause_and_disable(world: World, graph: FakeGraph) -> None:
    wa = await connect(world, graph)
    for n, name in enumerate(["Anna", "Ben", "Cem"]):
        await wa.subscribe(f"491510000000{n}", name=name)
    await world.drain_outbox()
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")
    sent_as = {m.callback_data: m for m in wa.template_sends()}
    anna, ben, cem = [r.id for r in await world.deliveries_of(broadcast_id)]

    # 131049, the per-person marketing cap: back in the queue, for tomorrow. The report
    # came after the broadcast finished: it is sending again, or the retry never happens.
    capped = failed_status(graph, sent_as[f"d:{anna}"], 131049)
    await wa.apply(capped)
    row = await wa.delivery(anna)
    assert (row.status, row.error_code) == ("queued", "131049")
    assert row.next_attempt_at >= utcnow() + DAY - timedelta(seconds=5)
    assert (await world.broadcast(broadcast_id)).status == "sending"
    assert not await world.is_done(broadcast_id)
    # Webhooks come twice: the duplicate leaves it waiting, not failed.
    await wa.apply(capped)
    assert (await wa.delivery(anna)).status == "queued"

    # It is sent again (a day later, here at once); then a late report on the first
    # attempt's wamid arrives and must not touch the new attempt.
    async with world.db.write() as conn:
        await conn.execute(
            update(deliveries).where(deliveries.c.id == anna).values(next_attempt_at=utcnow())
        )
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="second attempt sent")
    again = await wa.delivery(anna)
    newest = wa.template_sends()[-1]
    assert (newest.callback_data, again.provider_message_id) == (f"d:{anna}", newest.wamid)
    assert newest.wamid != sent_as[f"d:{anna}"].wamid
    await wa.apply(failed_status(graph, sent_as[f"d:{anna}"], 131026))
    assert (await wa.delivery(anna)).status == "sent"

    # 131048, spam rate limit: the whole broadcast pauses; the row waits in the queue.
    result = await wa.apply(failed_status(graph, sent_as[f"d:{ben}"], 131048))
    assert result.paused_broadcasts == [broadcast_id]
    assert (await wa.delivery(ben)).status == "queued"
    paused = await world.broadcast(broadcast_id)
    assert paused.status == "paused" and "131048" in paused.status_reason

    # 190, the token is gone: the channel is disabled (its broadcasts paused), audited.
    await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    result = await wa.apply(failed_status(graph, sent_as[f"d:{cem}"], 190))
    assert result.disabled_channels == [wa.channel_id]
    [channel] = await world.rows(select(channels).where(channels.c.id == wa.channel_id))
    assert channel.status == "disabled" and "190" in channel.status_reason
    stopped = await world.broadcast(broadcast_id)
    assert stopped.status == "paused" and stopped.status_reason.startswith("channel disabled")
    assert (await wa.delivery(cem)).status == "queued"
    [entry] = await world.rows(
        select(audit_log).where(
            audit_log.c.action == "channel.disable", audit_log.c.target_id == wa.channel_id
        )
    )
    assert "190" in entry.details["reason"]


# --- 8: template parameters, personalized ---------------------------------------------------


async def test_template_parameters_are_rendered_per_person_and_empty_ones_fail_alone(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph)
    await wa.subscribe("4915100000001", name="Anna")
    await wa.subscribe("4915100000002", name="Ben")
    nameless = await wa.subscribe("4915100000003", name="Cem")
    await world.drain_outbox()
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    # The review (broadcast_review) refuses a parameter empty for someone at the start;
    # a name gone after it (WhatsApp told us no profile name) fails that copy alone.
    async with world.db.write() as conn:
        await conn.execute(update(contacts).where(contacts.c.id == nameless).values(name=None))

    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    def body_of(message: SentMessage) -> list[str]:
        [body] = [c for c in message.payload["template"]["components"] if c["type"] == "body"]
        return [p["text"] for p in body["parameters"]]

    sends = {m.to: body_of(m) for m in wa.template_sends()}
    assert sends == {
        "4915100000001": ["Anna", "Stadtrat tagt"],
        "4915100000002": ["Ben", "Stadtrat tagt"],
    }
    rows = {r.contact_id: r for r in await world.deliveries_of(broadcast_id)}
    failed = rows.pop(nameless)
    assert failed.status == "failed" and failed.attempts == 1
    assert "body_parameters[1] is empty" in failed.error_reason, failed.error_reason
    assert {r.status for r in rows.values()} == {"sent"}
    stats = await wa.stats(broadcast_id)
    assert (stats["sent"], stats["failed"]) == (2, 1)


# --- reports on a row that is being sent again --------------------------------------------


async def _sent_then_capped(wa: WhatsApp) -> tuple[int, int, SentMessage]:
    """A one-person broadcast, sent, then failed by 131049; the row made due again."""
    await wa.subscribe("4915100000001", name="Anna")
    await wa.world.drain_outbox()
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    async with running(wa.world.dispatcher()):
        await wait_until(lambda: wa.world.is_done(broadcast_id), what="broadcast done")
    [first] = wa.template_sends()
    [row] = await wa.world.deliveries_of(broadcast_id)
    await wa.apply(failed_status(wa.graph, first, 131049))
    async with wa.world.db.write() as conn:
        await conn.execute(
            update(deliveries).where(deliveries.c.id == row.id).values(next_attempt_at=utcnow())
        )
    return broadcast_id, row.id, first


async def test_a_retry_whose_answer_was_lost_is_settled_by_its_own_callback(
    world: World, graph: FakeGraph, receiver: Receiver
) -> None:
    wa = await connect(world, graph)
    _, delivery_id, first = await _sent_then_capped(wa)
    # The retry is accepted, but its answer is lost; the row still holds the first wamid.
    graph.webhook_url = await receiver.start()
    graph.network_error_share, graph.network_error_accepts = 1.0, True
    async with running(world.dispatcher()):
        await wait_until(lambda: _recorded_as_unknown(wa, delivery_id), what="unknown outcome")
        await graph.drain()
    graph.network_error_share = 0.0
    retry = wa.template_sends()[-1]
    assert (await wa.delivery(delivery_id)).provider_message_id == first.wamid

    updates = await wa.statuses(receiver.posts)
    await wa.apply(*(u for u in updates if u.status is DeliveryStatus.SENT))

    row = await wa.delivery(delivery_id)
    assert (row.status, row.provider_message_id) == ("sent", retry.wamid)
    await asyncio.sleep(0.01)
    assert await dispatch.requeue_expired(world.db, settle_seconds=0) == 0
    async with running(world.dispatcher()):
        await asyncio.sleep(0.3)
    assert wa.copies() == Counter({f"d:{delivery_id}": 2})  # the first try and the retry


async def test_a_late_sent_report_does_not_cancel_the_retry_of_a_failed_attempt(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph)
    _, delivery_id, first = await _sent_then_capped(wa)
    # Meta's "sent" for the first attempt comes in a later POST than its "failed".
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    await wa.apply(
        StatusUpdate(first.wamid, DeliveryStatus.SENT, earlier, callback_data=first.callback_data)
    )
    row = await wa.delivery(delivery_id)
    assert (row.status, row.error_code) == ("queued", "131049")

    async with running(world.dispatcher()):
        await wait_until(lambda: wa.world.is_done(row.broadcast_id), what="retry sent")
    assert wa.copies() == Counter({f"d:{delivery_id}": 2})
    assert (await wa.delivery(delivery_id)).status == "sent"


async def test_duplicate_failed_reports_do_not_undo_an_admins_resume(
    world: World, graph: FakeGraph
) -> None:
    wa = await connect(world, graph)
    for n in range(2):
        await wa.subscribe(f"491510000000{n}", name=f"Person {n}")
    await world.drain_outbox()
    broadcast_id = await wa.broadcast("{{ contact.name }}", "Stadtrat tagt")
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")
    spam, token = (
        failed_status(graph, m, code)
        for m, code in zip(wa.template_sends(), (131048, 190), strict=True)
    )

    await wa.apply(spam)
    assert (await world.broadcast(broadcast_id)).status == "paused"
    await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    await wa.apply(spam)  # Meta posts it once more
    assert (await world.broadcast(broadcast_id)).status == "sending"

    await wa.apply(token)
    await update_channel(
        world.db, actor=world.owner, channel_id=wa.channel_id, box=BOX, status="active"
    )
    result = await wa.apply(token)
    assert result.disabled_channels == []
    [channel] = await world.rows(select(channels.c.status).where(channels.c.id == wa.channel_id))
    assert channel.status == "active"
    disables = await world.rows(select(audit_log).where(audit_log.c.action == "channel.disable"))
    assert len(disables) == 1
