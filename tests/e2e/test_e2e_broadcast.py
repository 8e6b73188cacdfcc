"""Broadcasts end to end: opt-in by keyword, personalised fan-out, opt-out honoured,
topics, and scheduling — all through the real server, its API and the sandbox phones."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from e2e_support import (
    Phones,
    addresses,
    async_wait_until,
    copies,
    create_channel,
    gather_bounded,
    get_broadcast,
    list_all,
    tag,
    wait_broadcast_done,
)

pytestmark = pytest.mark.e2e

PRIVACY_URL = "https://demo.example/datenschutz"
MEDIA_URL = "https://demo.example/bilder/tor.jpg"


def _person(address: str) -> str:
    return f"Person {address[-3:]}"


async def test_hundred_phones_subscribe_ten_stop_one_personalised_copy_each(server: Any) -> None:
    async with server.async_client() as client:
        patched = await client.patch("/api/v1/workspace", json={"privacy_url": PRIVACY_URL})
        assert patched.status_code == 200, patched.text
        channel_id = await create_channel(client, "e2e hundred")
        phones = Phones(client, channel_id)
        everyone = addresses("01", 100)
        stoppers = everyone[::10]  # 10 of them
        stayers = [a for a in everyone if a not in stoppers]
        assert len(stoppers) == 10 and len(stayers) == 90

        # Every documented keyword, in the spellings people type.
        opt_in_words = {
            a: ("START", "ANMELDEN", "start", "Start!")[i % 4] for i, a in enumerate(everyone)
        }
        opt_out_words = {
            a: ("STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE", "stop")[i % 5]
            for i, a in enumerate(stoppers)
        }
        started = time.monotonic()
        results = await gather_bounded(
            [lambda a=a: phones.write(a, opt_in_words[a], name=_person(a)) for a in everyone],
            limit=50,
        )
        assert [r["action"] for r in results] == ["opt_in"] * 100
        results = await phones.write_many([(a, opt_out_words[a]) for a in stoppers])
        assert [r["action"] for r in results] == ["opt_out"] * 10
        print(f"\n[e2e] 100 START + 10 STOP took {time.monotonic() - started:.2f}s")

        # Every phone gets its welcome (naming the privacy URL); the stoppers their goodbye.
        async def confirmations_arrived() -> bool:
            boxes = await phones.inboxes(everyone)
            return all(
                any(PRIVACY_URL in (m["text"] or "") for m in boxes[a])
                and (a not in stoppers or len(boxes[a]) >= 2)
                for a in everyone
            )

        await async_wait_until(
            confirmations_arrived,
            timeout=30,
            interval=0.2,
            message="welcome / goodbye confirmations",
        )

        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Hallo {{{{ contact.name }}}}/{{{{ contact.address }}}} #{marker}",
            },
        )
        assert created.status_code == 201, created.text
        broadcast = created.json()
        assert broadcast["status"] == "draft", broadcast
        sent = await client.post(f"/api/v1/broadcasts/{broadcast['id']}/send")
        assert sent.status_code == 200, sent.text
        assert sent.json()["status"] in {"sending", "done"}, sent.json()

        final = await wait_broadcast_done(client, broadcast["id"])
        stats = final["stats"]
        assert stats["total"] == 90, stats
        assert stats["failed"] == 0 and stats["skipped"] == 0 and stats["queued"] == 0, stats
        assert stats["sent"] + stats["delivered"] + stats["read"] == 90, stats

        boxes = await phones.inboxes(everyone)
        wrong: dict[str, Any] = {}
        for address in stayers:
            got = copies(boxes[address], marker)
            expected = f"Hallo {_person(address)}/{address} #{marker}"
            if [m["text"] for m in got] != [expected]:
                wrong[address] = [m["text"] for m in got]
        for address in stoppers:
            if copies(boxes[address], marker):
                wrong[address] = [m["text"] for m in copies(boxes[address], marker)]
        assert not wrong, f"phones with a wrong number of copies or text: {wrong}"

        # The sandbox phones report delivered, then read (delivered_after 0.5 s, read 2 s).
        async def all_read() -> dict[str, int] | None:
            s = (await get_broadcast(client, broadcast["id"]))["stats"]
            return s if s["read"] == 90 else None

        stats = await async_wait_until(all_read, timeout=20, interval=0.2, message="90 read")
        assert stats["sent"] + stats["delivered"] + stats["read"] == 90, stats
        boxes = await phones.inboxes(stayers)
        assert {copies(boxes[a], marker)[0]["status"] for a in stayers} == {"read"}

        subscribed = await list_all(
            client, "/api/v1/contacts", channel_id=channel_id, status="subscribed", limit=25
        )
        unsubscribed = await list_all(
            client, "/api/v1/contacts", channel_id=channel_id, status="unsubscribed", limit=25
        )
        assert sorted(c["address"] for c in subscribed) == sorted(stayers)
        assert sorted(c["address"] for c in unsubscribed) == sorted(stoppers)
        assert {c["status"] for c in subscribed} == {"subscribed"}
        assert {c["name"] for c in subscribed} == {_person(a) for a in stayers}

        by_address = {c["address"]: c for c in subscribed + unsubscribed}

        async def detail(address: str) -> dict[str, Any]:
            response = await client.get(f"/api/v1/contacts/{by_address[address]['id']}")
            assert response.status_code == 200, response.text
            return dict(response.json())

        details = await gather_bounded([lambda a=a: detail(a) for a in everyone], limit=25)
        for address, contact in zip(everyone, details, strict=True):
            history = contact["consent_history"]
            kinds = [event["kind"] for event in history]
            expected_kinds = ["opt_in", "opt_out"] if address in stoppers else ["opt_in"]
            assert sorted(kinds) == sorted(expected_kinds), (address, history)
            opt_in = next(e for e in history if e["kind"] == "opt_in")
            assert opt_in["keyword"] == opt_in_words[address], opt_in
            assert opt_in["source"] == "keyword", opt_in
            assert PRIVACY_URL in (opt_in["text_shown"] or ""), opt_in
            if address in stoppers:
                opt_out = next(e for e in history if e["kind"] == "opt_out")
                assert opt_out["keyword"] == opt_out_words[address], opt_out
                assert contact["status"] == "unsubscribed", contact
            else:
                assert contact["status"] == "subscribed", contact


async def test_topic_broadcast_reaches_only_that_topics_subscribers(server: Any) -> None:
    async with server.async_client() as client:
        for key, name in (("sport", "Sport"), ("politik", "Politik")):
            response = await client.post("/api/v1/topics", json={"key": key, "name": name})
            assert response.status_code == 201, response.text
        listed = await client.get("/api/v1/topics")
        assert listed.status_code == 200, listed.text
        assert {"sport", "politik"} <= {t["key"] for t in listed.json()["items"]}

        channel_id = await create_channel(client, "e2e topics")
        phones = Phones(client, channel_id)
        sport = addresses("02", 6)
        politik = addresses("03", 6)
        everything = addresses("04", 6)
        both = addresses("05", 2)
        writes = (
            [(a, "START sport") for a in sport]
            + [(a, "START politik") for a in politik]
            + [(a, "START") for a in everything]
            + [(a, "START sport") for a in both]
            + [(a, "start Politik") for a in both]
        )
        results = await phones.write_many(writes, limit=20)
        assert {r["action"] for r in results} == {"opt_in"}
        # Leaving one topic: out of sport, still in politik (and still subscribed).
        left = await phones.write(both[1], "STOP sport")
        assert left["action"] == "opt_out", left
        sport_only = sport + both[:1]
        leaver = (await client.get(f"/api/v1/contacts/{left['contact_id']}")).json()
        assert leaver["status"] == "subscribed", leaver
        assert [t["key"] for t in leaver["subscriptions"]] == ["politik"], leaver

        sport_contacts = await list_all(
            client, "/api/v1/contacts", channel_id=channel_id, topic="sport"
        )
        assert sorted(c["address"] for c in sport_contacts) == sorted(sport_only)

        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Sportnews #{marker}",
                "topic_keys": ["sport"],
                "media_url": MEDIA_URL,
            },
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        assert created.json()["topic_keys"] == ["sport"], created.json()
        assert (await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")).status_code == 200
        final = await wait_broadcast_done(client, broadcast_id)
        assert final["stats"]["total"] == len(sport_only), final

        boxes = await phones.inboxes(sport + politik + everything + both)
        counts = {a: len(copies(box, marker)) for a, box in boxes.items()}
        assert counts == {a: (1 if a in sport_only else 0) for a in boxes}, counts
        media = {m["media_url"] for a in sport_only for m in copies(boxes[a], marker)}
        assert media == {MEDIA_URL}, media


async def test_scheduled_broadcast_goes_out_at_its_time_not_before(server: Any) -> None:
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e scheduled")
        phones = Phones(client, channel_id)
        people = addresses("06", 3)
        await phones.write_many([(a, "ANMELDEN") for a in people])

        marker = tag()
        # A non-UTC offset on purpose: the server must convert, not compare wall clocks.
        berlin_summer = timezone(timedelta(hours=2))
        send_at = (datetime.now(UTC) + timedelta(seconds=3)).astimezone(berlin_summer)
        created = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Später #{marker}",
                "send_at": send_at.isoformat(),
            },
        )
        created_at = time.monotonic()
        assert created.status_code == 201, created.text
        broadcast = created.json()
        assert broadcast["status"] == "scheduled", broadcast
        assert datetime.fromisoformat(broadcast["send_at"]) == send_at, broadcast

        # A second one for the same moment, cancelled before its time: it never goes out.
        cancelled_marker = tag()
        other = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Doch nicht #{cancelled_marker}",
                "send_at": send_at.isoformat(),
            },
        )
        assert other.status_code == 201 and other.json()["status"] == "scheduled", other.text
        cancelled = await client.post(f"/api/v1/broadcasts/{other.json()['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled", cancelled.json()

        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - created_at)))
        early = await phones.inboxes(people)
        assert all(not copies(box, marker) for box in early.values()), early
        assert (await get_broadcast(client, broadcast["id"]))["status"] == "scheduled"

        final = await wait_broadcast_done(client, broadcast["id"], timeout=30)
        assert final["stats"]["total"] == 3, final
        boxes = await phones.inboxes(people)
        for address, box in boxes.items():
            got = copies(box, marker)
            assert len(got) == 1, (address, box)
            received = datetime.fromisoformat(got[0]["received_at"])
            if received.tzinfo is None:
                received = received.replace(tzinfo=UTC)
            assert received >= send_at, f"{address} received it at {received}, before {send_at}"
            assert not copies(box, cancelled_marker), (address, box)
        still = await get_broadcast(client, other.json()["id"])
        assert still["status"] == "cancelled" and still["stats"]["sent"] == 0, still


async def test_contact_without_a_profile_name_is_not_greeted_as_none(server: Any) -> None:
    """Phones that write only {"text": "START"} (the documented body) have no name;
    ``{{ contact.name }}`` must not put the word "None" into their message."""
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e nameless")
        phones = Phones(client, channel_id)
        people = addresses("12", 3)
        await phones.write_many([(a, "START") for a in people])
        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts",
            json={
                "channel_id": channel_id,
                "text": f"Hallo {{{{ contact.name }}}}/{{{{ contact.address }}}} #{marker}",
            },
        )
        assert created.status_code == 201, created.text
        assert (
            await client.post(f"/api/v1/broadcasts/{created.json()['id']}/send")
        ).status_code == 200
        await wait_broadcast_done(client, created.json()["id"])
        boxes = await phones.inboxes(people)
        for address, box in boxes.items():
            texts = [m["text"] for m in copies(box, marker)]
            assert len(texts) == 1, (address, texts)
            assert texts[0].startswith("Hallo ") and texts[0].endswith(f"/{address} #{marker}"), (
                texts
            )
            assert "None" not in texts[0], f"{address} was greeted as None: {texts[0]!r}"


async def test_stop_while_a_broadcast_is_being_sent_is_honoured(server: Any) -> None:
    """PRODUCT.md: "no one who said STOP gets another broadcast". A slow channel (10/s)
    needs ~3 s for 30 subscribers; the last five (by id, so sent last) say STOP right
    after the send starts. None of them may receive a copy after their STOP was
    recorded."""
    async with server.async_client() as client:
        channel_id = await create_channel(client, "e2e slow stop", settings={"throughput": 10})
        phones = Phones(client, channel_id)
        people = addresses("13", 30)
        for address in people:  # one by one: contact ids in this order
            await phones.write(address, "START")
        stoppers = people[-5:]

        # Let the 30 welcomes (10/s) drain first, so the broadcast has the channel to itself.
        async def welcomed() -> bool:
            boxes = await phones.inboxes(people)
            return all(len(box) >= 1 for box in boxes.values())

        await async_wait_until(welcomed, timeout=30, interval=0.2, message="welcomes")

        marker = tag()
        created = await client.post(
            "/api/v1/broadcasts", json={"channel_id": channel_id, "text": f"Langsam #{marker}"}
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        assert (await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")).status_code == 200
        await asyncio.sleep(0.3)
        results = await phones.write_many([(a, "STOP") for a in stoppers])
        assert {r["action"] for r in results} == {"opt_out"}

        final = await wait_broadcast_done(client, broadcast_id, timeout=30)
        boxes = await phones.inboxes(stoppers)
        late: dict[str, Any] = {}
        for address, result in zip(stoppers, results, strict=True):
            detail = (await client.get(f"/api/v1/contacts/{result['contact_id']}")).json()
            opt_out_at = max(
                datetime.fromisoformat(e["created_at"])
                for e in detail["consent_history"]
                if e["kind"] == "opt_out"
            )
            after = [
                m["received_at"]
                for m in copies(boxes[address], marker)
                if datetime.fromisoformat(m["received_at"]) > opt_out_at
            ]
            if after:
                late[address] = {"opt_out_at": opt_out_at.isoformat(), "copies_at": after}
        assert not late, (
            f"broadcast sent to people after they said STOP: {late}; stats {final['stats']}"
        )
        assert final["stats"]["skipped"] == 5, final["stats"]
