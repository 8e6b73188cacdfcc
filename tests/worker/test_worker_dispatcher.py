"""The dispatcher's real loop against sandbox phones and small fake platforms.

The fakes here stand in for a messenger *platform* (a recipient who blocked us, a
revoked token); everything of Rundfunk's own runs for real on a SQLite file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import select

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.channels.sandbox import SandboxChannel
from rundfunk.core.errors import ChannelDisabledError, RecipientGoneError
from rundfunk.core.ratelimit import Rate
from rundfunk.db.tables import audit_log, channels, consent_events, contacts
from rundfunk.services import broadcast_views, broadcasts
from rundfunk.services.outcomes import RetryPolicy
from service_world import World, running, wait_until

GREETING = 'Hallo {{ contact.name | default("friend", true) }}, news from {{ workspace.name }}!'


def _greeting(name: str | None) -> str:
    return f"Hallo {name or 'friend'}, news from Acme!"  # the workspace is called Acme


async def _status_is(world: World, broadcast_id: int, status: str) -> bool:
    await broadcasts.finish_completed(world.db)
    return str((await world.broadcast(broadcast_id)).status) == status


async def _stats(world: World, broadcast_id: int) -> dict[str, int]:
    details = await broadcast_views.get_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )
    stats: dict[str, int] = details["stats"]
    return stats


async def test_every_subscriber_gets_exactly_one_personalized_copy(world: World) -> None:
    people = {f"+49{n:03}": (f"Person {n}" if n % 3 else None) for n in range(40)}
    for address, name in people.items():
        await world.subscriber(address, name=name)
    broadcast_id = await world.send(GREETING)

    async with running(world.dispatcher(chunk_size=7)):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    for address, name in people.items():
        texts = await world.texts(address)
        assert texts.count(_greeting(name)) == 1, (address, texts)
        assert not any(t and "{{" in t for t in texts)  # nothing went out unrendered
    stats = await _stats(world, broadcast_id)
    assert (stats["total"], stats["sent"], stats["queued"]) == (40, 40, 0)


async def test_stop_between_fan_out_and_claim_is_skipped(world: World) -> None:
    await world.subscriber("+491", name="Anna")
    await world.subscriber("+492", name="Ben")
    await world.subscriber("+493", name="Cem")
    broadcast_id = await world.send(GREETING)
    await world.write("+492", "STOP")  # after the fan-out, before any claim

    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    stats = await _stats(world, broadcast_id)
    assert (stats["sent"], stats["skipped"]) == (2, 1)
    assert _greeting("Ben") not in await world.texts("+492")
    assert str((await world.texts("+492"))[-1]).startswith("You have unsubscribed")
    assert (await world.texts("+491")).count(_greeting("Anna")) == 1


async def test_stop_while_the_claimed_chunk_waits_on_the_limiter_is_honoured(
    world: World,
) -> None:
    """At 2 sends a second the last of five waits about 2 s after the claim: it asks
    again right before going out (RECHECK_AFTER_S), so a STOP meanwhile keeps it back."""
    slow = await world.add_channel("slow", settings={"throughput": 2, "burst": 1})
    people = [f"+4960{n}" for n in range(5)]
    for address in people:
        await world.subscriber(address, name=address, channel_id=slow)
    await world.drain_outbox()  # the welcomes go first
    broadcast_id = await world.send(GREETING, channel_id=slow)

    async with running(world.dispatcher()):
        await wait_until(
            lambda: _sent_to(world, people[0], slow), what="the first send of the chunk"
        )
        await world.write(people[-1], "STOP", channel_id=slow)
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    stats = await _stats(world, broadcast_id)
    assert (stats["sent"], stats["skipped"]) == (4, 1)
    assert _greeting(people[-1]) not in await world.texts(people[-1], channel_id=slow)


async def _sent_to(world: World, address: str, channel_id: int) -> bool:
    return any(
        t and t.startswith("Hallo") for t in await world.texts(address, channel_id=channel_id)
    )


async def test_retryable_failures_end_with_everyone_sent_once(world: World) -> None:
    flaky = await world.add_channel("flaky", settings={"sandbox": {"fail_retryable_share": 0.3}})
    addresses = [f"+49{n:03}" for n in range(40)]
    for address in addresses:
        await world.subscriber(address, channel_id=flaky)
    broadcast_id = await world.send("Breaking news", channel_id=flaky)

    async with running(world.dispatcher(chunk_size=10)):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    for address in addresses:
        assert (await world.texts(address, channel_id=flaky)).count("Breaking news") == 1
    rows = await world.deliveries_of(broadcast_id)
    assert {r.status for r in rows} == {"sent"}
    # The failures really happened (0.7 ** 40: no retry at all is a 1-in-1.6-million run).
    assert max(r.attempts for r in rows) > 1


async def test_permanent_failures_are_failed_with_their_reason(world: World) -> None:
    broken = await world.add_channel("broken", settings={"sandbox": {"fail_permanent_share": 0.3}})
    addresses = [f"+49{n:03}" for n in range(40)]
    for address in addresses:
        await world.subscriber(address, channel_id=broken)
    broadcast_id = await world.send("Breaking news", channel_id=broken)

    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    rows = await world.deliveries_of(broadcast_id)
    by_status = Counter(r.status for r in rows)
    assert set(by_status) == {"sent", "failed"}, by_status  # both: 0.7**40 / 0.3**40 odds
    address_of = {
        r.id: r.address for r in await world.rows(select(contacts.c.id, contacts.c.address))
    }
    for row in rows:
        copies = (await world.texts(address_of[row.contact_id], channel_id=broken)).count(
            "Breaking news"
        )
        if row.status == "failed":
            assert row.error_code == "sandbox_permanent"
            assert (
                row.error_reason == "sandbox_permanent: sandbox: recipient undeliverable (injected)"
            )
            assert row.attempts == 1  # never retried
            assert copies == 0
        else:
            assert copies == 1
    stats = await _stats(world, broadcast_id)
    assert stats["failed"] == by_status["failed"]


async def test_too_many_failures_pause_the_broadcast(world: World) -> None:
    broken = await world.add_channel("broken", settings={"sandbox": {"fail_permanent_share": 1.0}})
    for n in range(40):
        await world.subscriber(f"+49{n:03}", channel_id=broken)
    broadcast_id = await world.send("Breaking news", channel_id=broken)
    policy = RetryPolicy(
        max_attempts=3, base_seconds=0.01, pause_error_share=0.5, pause_min_sample=10
    )

    async with running(world.dispatcher(policy, chunk_size=5)):
        await wait_until(lambda: _status_is(world, broadcast_id, "paused"), what="pause")

    row = await world.broadcast(broadcast_id)
    assert re.fullmatch(r"paused: 100% of \d+ sends failed", row.status_reason), row.status_reason
    stats = await _stats(world, broadcast_id)
    assert 10 <= stats["failed"] < 40  # judged after the sample, not after everyone
    assert stats["queued"] == 40 - stats["failed"]  # the rest waits for a human
    assert await world.rows(select(channels.c.status).where(channels.c.id == broken)) == [
        ("active",)
    ]


async def test_retries_give_up_after_max_attempts(world: World) -> None:
    down = await world.add_channel("down", settings={"sandbox": {"fail_retryable_share": 1.0}})
    for n in range(3):
        await world.subscriber(f"+49{n}", channel_id=down)
    broadcast_id = await world.send("Breaking news", channel_id=down)
    policy = RetryPolicy(max_attempts=3, base_seconds=0.01, cap_seconds=0.02)

    async with running(world.dispatcher(policy)):
        # Every send failed: the broadcast ends failed, with the reason (not a green done).
        await wait_until(lambda: world.is_done(broadcast_id, "failed"), what="broadcast failed")

    rows = await world.deliveries_of(broadcast_id)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 3)] * 3
    for row in rows:
        assert row.error_reason == (
            "gave up after 3 attempts: sandbox_retry: sandbox: temporarily unavailable (injected)"
        )


class _Platform:
    """A fake messenger platform: phones are the sandbox's, but some sends are refused.

    ``refuse`` is the error the platform answers for every send, or a mapping from a
    recipient's address to the error answered for them (anyone else receives).
    """

    kind = "sandbox"

    def __init__(self, world: World, refuse: dict[str, Exception] | Exception) -> None:
        self.channel_id = world.channel_id
        self._phones = SandboxChannel(world.channel_id, world.sandbox)
        self._refuse = refuse
        self.calls = 0

    async def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        error = (
            self._refuse.get(message.address) if isinstance(self._refuse, dict) else self._refuse
        )
        if error is not None:
            raise error
        return await self._phones.send(message)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse(self, body: bytes) -> list[InboundEvent]:
        return []

    async def close(self) -> None:
        return None


async def test_recipient_gone_unsubscribes_with_a_consent_event(world: World) -> None:
    stays = await world.subscriber("+491")
    gone = await world.subscriber("+492")
    await world.drain_outbox()  # the welcome texts went out before the person left
    world.registry.register(
        _Platform(world, {"+492": RecipientGoneError("recipient blocked you", code="131026")}),
        Rate(1000, 50),
    )
    broadcast_id = await world.send("Breaking news")

    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    rows = {r.contact_id: r for r in await world.deliveries_of(broadcast_id)}
    assert (rows[gone].status, rows[gone].error_code) == ("failed", "131026")
    assert rows[gone].error_reason == "131026: recipient blocked you"
    assert rows[stays].status == "sent"
    status = await world.rows(select(contacts.c.id, contacts.c.status).order_by(contacts.c.id))
    assert dict(status) == {stays: "subscribed", gone: "unsubscribed"}
    event = (
        await world.rows(
            select(consent_events)
            .where(consent_events.c.contact_id == gone)
            .order_by(consent_events.c.id)
        )
    )[-1]
    assert (event.kind, event.source, event.actor, event.topic_id) == (
        "opt_out",
        "send_error",
        "platform",
        None,
    )
    # The next broadcast leaves them out from the start.
    assert {r.contact_id for r in await world.deliveries_of(await world.send("More"))} == {stays}


async def test_disabled_channel_stops_and_pauses_everything_on_it(world: World) -> None:
    for n in range(12):
        await world.subscriber(f"+49{n:02}")
    await world.drain_outbox()
    platform = _Platform(world, ChannelDisabledError("access token revoked", code="190"))
    world.registry.register(platform, Rate(1000, 50))
    first = await world.send("First")
    second = await world.send("Second")

    async with running(world.dispatcher(chunk_size=50)):
        await wait_until(lambda: _both_paused(world, first, second), what="both broadcasts paused")
        await wait_until(_no_deliveries_in_flight(world), what="outcomes recorded")

    [channel] = await world.rows(
        select(channels.c.status, channels.c.status_reason).where(channels.c.id == world.channel_id)
    )
    assert tuple(channel) == ("disabled", "190: access token revoked")
    assert platform.calls > 0
    for broadcast_id in (first, second):
        row = await world.broadcast(broadcast_id)
        assert row.status_reason == "channel disabled: 190: access token revoked"
        # Nothing was sent and no attempt was charged: resuming later starts afresh.
        assert {(d.status, d.attempts) for d in await world.deliveries_of(broadcast_id)} == {
            ("queued", 0)
        }
    audits = await world.rows(
        select(audit_log.c.actor, audit_log.c.target_id, audit_log.c.details).where(
            audit_log.c.action == "channel.disable"
        )
    )
    assert [tuple(a) for a in audits] == [
        ("system", world.channel_id, {"reason": "190: access token revoked"})
    ]
    assert all(not t or "First" not in t for t in await world.texts("+4900"))


async def _both_paused(world: World, first: int, second: int) -> bool:
    return all([await _status_is(world, b, "paused") for b in (first, second)])


def _no_deliveries_in_flight(world: World) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for broadcast_id in await _broadcast_ids(world):
            if any(d.status == "sending" for d in await world.deliveries_of(broadcast_id)):
                return False
        return True

    return check


async def _broadcast_ids(world: World) -> list[int]:
    listed = await broadcast_views.list_broadcasts(world.db, actor=world.owner)
    return [int(b["id"]) for b in listed]
