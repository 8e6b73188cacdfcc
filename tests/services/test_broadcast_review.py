"""The review before a broadcast goes out (services.broadcast_review), and how a broadcast
ends: a message that fails, comes out empty or is too long for recipients in the audience
is refused with the reason — at compose, at send and at the scheduled time — and a
broadcast whose every send failed ends ``failed``, not ``done``; ``send_at`` more than a
year ahead is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from rundfunk.channels.base import StatusUpdate
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.tables import audit_log, broadcasts, contacts, deliveries
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views
from rundfunk.services import broadcasts as service
from rundfunk.services.broadcast_review import SAMPLE_EACH, RenderRefused
from rundfunk.services.errors import Conflict, Invalid
from rundfunk.services.statuses import apply_statuses
from service_world import World, running, wait_until

UPPER = "Hallo {{ contact.name.upper() }}"


async def _people(world: World, count: int, **special: dict[str, Any]) -> list[int]:
    """``count`` subscribers named P<n> with a city; ``special`` overrides by address."""
    now = utcnow()
    rows = []
    for n in range(count):
        address = f"+4915{n:05d}"
        row = {
            "workspace_id": world.workspace_id,
            "channel_id": world.channel_id,
            "address": address,
            "name": f"P{n}",
            "language": "de",
            "attributes": {"city": "Köln"},
            "tags": [],
            "status": "subscribed",
            "blocked": False,
            "created_at": now,
            "updated_at": now,
        }
        row.update(special.get(address, {}))
        rows.append(row)
    async with world.db.write() as conn:
        await conn.execute(contacts.insert(), rows)
        return list(
            await conn.scalars(
                select(contacts.c.id)
                .where(contacts.c.channel_id == world.channel_id)
                .order_by(contacts.c.id)
            )
        )


MIDDLE = "+491500030"  # neither among the first nor among the last SAMPLE_EACH of 60


async def _create(world: World, text: str, **extra: Any) -> dict[str, Any]:
    return await service.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text=text, **extra
    )


async def test_a_text_failing_for_one_nameless_recipient_in_the_middle_is_refused(
    world: World,
) -> None:
    await _people(world, 60, **{MIDDLE: {"name": None}})
    with pytest.raises(RenderRefused) as refused:
        await _create(world, UPPER)
    problem = refused.value.problem
    assert (problem.kind, problem.who, problem.failing) == ("render", MIDDLE, 1)
    assert problem.checked > 2 * SAMPLE_EACH  # first, last and the nameless one
    message = refused.value.message
    assert message.startswith("text: for +491500030 the text cannot be personalized")
    assert "'None' has no attribute 'upper'" in message and "1 of 41" in message
    assert refused.value.field == "text"
    assert await world.rows(select(broadcasts.c.id)) == []  # nothing was written
    # The same text is fine once everybody has a name.
    async with world.db.write() as conn:
        await conn.execute(update(contacts).where(contacts.c.name.is_(None)).values(name="X"))
    assert (await _create(world, UPPER))["status"] == "draft"


async def test_an_attribute_missing_or_empty_in_the_middle_makes_an_empty_message(
    world: World,
) -> None:
    await _people(world, 60, **{MIDDLE: {"attributes": {"city": ""}}})
    with pytest.raises(RenderRefused) as refused:
        await _create(world, "{{ contact.attributes.city | upper }}")
    assert refused.value.problem.kind == "empty"
    assert "for P30 (+491500030) the message comes out empty" in refused.value.message
    # Missing altogether (another key), found by its own look-up.
    async with world.db.write() as conn:
        await conn.execute(update(contacts).values(attributes={"city": "Bonn", "zip": "1"}))
        await conn.execute(
            update(contacts).where(contacts.c.address == MIDDLE).values(attributes={"city": "B"})
        )
    with pytest.raises(RenderRefused, match="P30"):
        await _create(world, "{{ contact.attributes.zip }}")
    # With some text around it the message is not empty: that is the editor's choice.
    assert await _create(world, "PLZ {{ contact.attributes.zip }}")


async def test_a_message_over_the_channels_limit_after_personalizing_is_refused(
    world: World,
) -> None:
    await _people(world, 60, **{MIDDLE: {"attributes": {"city": "x" * 4000}}})
    with pytest.raises(RenderRefused) as refused:
        await _create(world, "Grüße nach {{ contact.attributes.city }}! " + "." * 90)
    problem = refused.value.problem
    assert (problem.kind, problem.limit, problem.length) == ("long", 4096, 4097)
    assert "has 4097 characters; the channel allows 4096" in refused.value.message


async def test_send_checks_again_because_the_audience_changed_since_the_draft(
    world: World,
) -> None:
    await _people(world, 5)
    draft = await _create(world, UPPER)
    async with world.db.write() as conn:  # someone without a name subscribes later
        await conn.execute(
            update(contacts).where(contacts.c.address == "+491500002").values(name=None)
        )
    with pytest.raises(RenderRefused, match=r"\+491500002"):
        await service.send_broadcast(world.db, actor=world.owner, broadcast_id=draft["id"])
    assert (await world.broadcast(draft["id"])).status == "draft"
    assert await world.deliveries_of(draft["id"]) == []


async def test_a_scheduled_broadcast_that_fails_review_at_its_time_ends_failed_unsent(
    world: World,
) -> None:
    await _people(world, 3)
    scheduled = await _create(world, UPPER, send_at=utcnow() + timedelta(minutes=5))
    async with world.db.write() as conn:
        await conn.execute(update(contacts).where(contacts.c.id > 0).values(name=None))
    await service.start_due(world.db, now=utcnow() + timedelta(minutes=6))
    row = await world.broadcast(scheduled["id"])
    assert row.status == "failed"
    assert row.status_reason.startswith("not sent: text: for +491500000 the text cannot be")
    assert await world.deliveries_of(scheduled["id"]) == []
    actions = await world.rows(select(audit_log.c.action).where(audit_log.c.target_id == row.id))
    assert ("broadcast.refused",) in actions


async def test_every_send_failed_ends_failed_with_the_reason_one_sent_ends_done(
    world: World,
) -> None:
    await _people(world, 3)
    failing = await world.send("Hallo {{ contact.name }}")
    fine = await world.send("Hallo again")
    async with world.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.broadcast_id == failing)
            .values(status="failed", error_reason="recipient undeliverable")
        )
        ids = list(
            await conn.scalars(select(deliveries.c.id).where(deliveries.c.broadcast_id == fine))
        )
        await conn.execute(
            update(deliveries).where(deliveries.c.id.in_(ids[:2])).values(status="failed")
        )
        await conn.execute(
            update(deliveries).where(deliveries.c.id == ids[2]).values(status="sent")
        )
    assert await service.finish_completed(world.db) == 2
    failed = await broadcast_views.get_broadcast(world.db, actor=world.owner, broadcast_id=failing)
    assert failed["status"] == "failed"
    assert failed["status_reason"] == "all 3 sends failed: recipient undeliverable"
    assert failed["finished_at"] is not None
    done = await broadcast_views.get_broadcast(world.db, actor=world.owner, broadcast_id=fine)
    assert (done["status"], done["status_reason"]) == ("done", None)
    with pytest.raises(Conflict, match="already failed"):
        await service.cancel_broadcast(world.db, actor=world.owner, broadcast_id=failing)
    with pytest.raises(Conflict):
        await service.send_broadcast(world.db, actor=world.owner, broadcast_id=failing)


async def test_everyone_skipped_is_done_not_failed(world: World) -> None:
    await _people(world, 2)
    broadcast_id = await world.send("Hi")
    async with world.db.write() as conn:
        await conn.execute(update(deliveries).values(status="skipped"))
    await service.finish_completed(world.db)
    assert (await world.broadcast(broadcast_id)).status == "done"


async def test_the_dispatcher_never_sends_an_empty_message_to_an_unsampled_recipient(
    world: World,
) -> None:
    """Past the review (a city emptied after the start): that one copy fails, the others go."""
    await world.subscriber("+491", name="Anna")
    await world.subscriber("+492", name="Ben")
    async with world.db.write() as conn:
        await conn.execute(update(contacts).values(attributes={"city": "Köln"}))
    await world.drain_outbox()
    broadcast_id = await world.send("{{ contact.attributes.city }}")
    async with world.db.write() as conn:
        await conn.execute(
            update(contacts).where(contacts.c.address == "+492").values(attributes={})
        )
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")
    rows = {r.contact_id: r for r in await world.deliveries_of(broadcast_id)}
    statuses = sorted((r.status, r.error_reason) for r in rows.values())
    assert statuses == [
        ("failed", "render: personalization: the message is empty for this contact"),
        ("sent", None),
    ]
    assert "" not in await world.texts("+492")
    assert (await world.texts("+491"))[-1] == "Köln"


async def test_a_render_failure_for_everyone_ends_the_broadcast_failed(world: World) -> None:
    """The issue's case past the review: every send fails, and the broadcast says so."""
    await world.subscriber("+491", name="Anna")
    await world.drain_outbox()
    broadcast_id = await world.send(UPPER)
    async with world.db.write() as conn:
        await conn.execute(update(contacts).values(name=None))
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id, "failed"), what="broadcast failed")
    row = await world.broadcast(broadcast_id)
    assert row.status_reason.startswith(
        "all 1 sends failed: render: personalization: cannot personalize: 'None' has no"
    )


@pytest.mark.parametrize(
    ("ahead", "refused"), [(timedelta(days=360), False), (timedelta(days=367), True)]
)
async def test_send_at_more_than_a_year_ahead_is_refused(
    world: World, ahead: timedelta, refused: bool
) -> None:
    await _people(world, 1)
    if refused:
        with pytest.raises(Invalid, match="send_at is more than a year ahead"):
            await _create(world, "Hi", send_at=utcnow() + ahead)
    else:
        assert (await _create(world, "Hi", send_at=utcnow() + ahead))["status"] == "scheduled"


async def test_a_late_receipt_turns_a_failed_broadcast_done(world: World) -> None:
    """Several devices: one reported failed, another delivered later (CHANNELS.md)."""
    await world.subscriber("+491", name="Anna")
    await world.drain_outbox()
    broadcast_id = await world.send("News")
    async with world.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .values(status="failed", provider_message_id="wamid.1", error_reason="gone")
        )
    await service.finish_completed(world.db)
    assert (await world.broadcast(broadcast_id)).status == "failed"
    [row] = await world.deliveries_of(broadcast_id)
    receipt = StatusUpdate(
        provider_message_id="wamid.1", status=DeliveryStatus.DELIVERED,
        timestamp=utcnow(), callback_data=f"d:{row.id}",
    )  # fmt: skip
    async with world.db.write() as conn:
        assert await apply_statuses(conn, channel_id=world.channel_id, updates=[receipt]) == 1
    ended = await world.broadcast(broadcast_id)
    assert (ended.status, ended.status_reason) == ("done", None)
