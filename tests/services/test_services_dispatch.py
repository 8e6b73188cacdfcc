"""The deliveries table as a queue: leases, requeueing after a crash, consent at claim."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from rundfunk.core.personalize import render
from rundfunk.db.tables import sandbox_messages
from rundfunk.services import dispatch
from rundfunk.services.consent_check import still_wanted
from rundfunk.services.dispatch import SendOutcome
from rundfunk.services.outcomes import RetryPolicy, record
from service_world import World, running, wait_until


async def test_a_crash_after_half_a_chunk_sends_each_message_once(world: World) -> None:
    people = {f"+49{n:03}": f"P{n}" for n in range(20)}
    for address, name in people.items():
        await world.subscriber(address, name=name)
    broadcast_id = await world.send("Hi {{ contact.name }}!")

    jobs = await dispatch.claim(world.db, limit=1000, lease_seconds=60)
    chunk = [job for job in jobs if job.table == "deliveries"]
    assert len(chunk) == len(people)
    # Half of the chunk reaches the phones, then the process dies before recording.
    await asyncio.gather(
        *(
            world.sandbox.deliver(
                job.channel_id, job.message(render(job.text or "", contact=job.contact))
            )
            for job in chunk[:10]
        )
    )
    statuses = Counter(d.status for d in await world.deliveries_of(broadcast_id))
    assert statuses == {"sent": 10, "sending": 10}

    # The next start: whatever is still "sending" belonged to the dead process.
    requeued = await dispatch.requeue_expired(world.db, everything=True)
    assert requeued == len(jobs) - 10  # the unsent deliveries and the START confirmations
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    for address, name in people.items():
        texts = await world.texts(address)
        assert texts.count(f"Hi {name}!") == 1, (address, texts)
    assert {d.status for d in await world.deliveries_of(broadcast_id)} == {"sent"}


async def test_only_expired_leases_go_back_to_the_queue(world: World) -> None:
    await world.subscriber("+491")
    await world.subscriber("+492")
    await world.drain_outbox()
    broadcast_id = await world.send("Hi")
    [live] = await dispatch.claim(world.db, limit=1, lease_seconds=60)
    [expired] = await dispatch.claim(world.db, limit=1, lease_seconds=-1)
    assert {live.table, expired.table} == {"deliveries"}

    assert await dispatch.requeue_expired(world.db) == 1

    states = {d.id: d.status for d in await world.deliveries_of(broadcast_id)}
    assert states == {live.id: "sending", expired.id: "queued"}


async def test_stop_after_fan_out_skips_at_claim(world: World) -> None:
    stays = await world.subscriber("+491")
    leaves = await world.subscriber("+492")
    broadcast_id = await world.send("Hi")
    await world.write("+492", "STOP")

    jobs = await dispatch.claim(world.db, limit=1000, lease_seconds=60)

    assert {j.contact_id for j in jobs if j.table == "deliveries"} == {stays}
    rows = {d.contact_id: d for d in await world.deliveries_of(broadcast_id)}
    assert (rows[leaves].status, rows[leaves].error_reason) == (
        "skipped",
        "unsubscribed before send",
    )
    assert await world.rows(select(sandbox_messages.c.id)) == []  # claiming sends nothing
    assert rows[stays].status == "sending"
    assert rows[stays].lease_until is not None


async def test_a_slow_worker_whose_lease_ran_out_does_not_double_send(world: World) -> None:
    """Worker A's lease expires mid-send, worker B claims the same rows; both send."""
    for n in range(5):
        await world.subscriber(f"+49{n}")
    await world.drain_outbox()
    broadcast_id = await world.send("Once")
    slow = await dispatch.claim(world.db, limit=100, lease_seconds=-1)  # already expired
    assert await dispatch.requeue_expired(world.db) == 5
    fast = await dispatch.claim(world.db, limit=100, lease_seconds=60)
    assert sorted(j.id for j in fast) == sorted(j.id for j in slow)

    first = [await world.sandbox.deliver(j.channel_id, j.message("Once")) for j in slow]
    second = [await world.sandbox.deliver(j.channel_id, j.message("Once")) for j in fast]

    assert second == first  # B is told the id of the copy A already put on the phone
    for n in range(5):
        assert (await world.texts(f"+49{n}")).count("Once") == 1
    assert {d.status for d in await world.deliveries_of(broadcast_id)} == {"sent"}


async def test_a_claim_taken_over_is_neither_sent_nor_recorded_by_its_old_holder(
    world: World,
) -> None:
    """For a platform that cannot refuse a second copy (WhatsApp), the old holder of a
    lease that ran out must not send: the last-moment check says the row is no longer
    its claim, and its outcome cannot overwrite the new claim's row."""
    for n in range(3):
        await world.subscriber(f"+49{n}")
    await world.drain_outbox()
    broadcast_id = await world.send("Once")
    slow = await dispatch.claim(world.db, limit=100, lease_seconds=-1)  # already expired
    assert await dispatch.requeue_expired(world.db) == 3
    fast = await dispatch.claim(world.db, limit=100, lease_seconds=60)

    assert await still_wanted(world.db, slow) == set()
    assert await still_wanted(world.db, fast) == {job.id for job in fast}

    await record(
        world.db,
        [SendOutcome(job, provider_message_id=f"late-{job.id}") for job in slow],
        policy=RetryPolicy(),
    )
    rows = await world.deliveries_of(broadcast_id)
    assert {(d.status, d.provider_message_id) for d in rows} == {("sending", None)}
    assert {d.attempts for d in rows} == {fast[0].attempts}

    await record(
        world.db,
        [SendOutcome(job, provider_message_id=f"ok-{job.id}") for job in fast],
        policy=RetryPolicy(),
    )
    rows = await world.deliveries_of(broadcast_id)
    assert {d.status for d in rows} == {"sent"}
    assert {d.provider_message_id for d in rows} == {f"ok-{job.id}" for job in fast}
