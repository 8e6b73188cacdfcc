"""WhatsApp end to end: the real server process against a fake Graph API on loopback.

Signed START webhooks subscribe 1,000 people; a template broadcast reaches each of
them exactly once and the statuses flow back; a reply opens a private conversation;
the agent answers inside the 24-hour window and is refused outside it; a second
broadcast under injected errors (10 % 130429, 5 % 131026, 2 % dropped connections
whose message was accepted) still reaches every deliverable person exactly once,
and a request with a bad signature stores nothing. Figures are printed (-s).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
from e2e_support import assert_error, async_wait_until, gather_bounded, list_all

from rundfunk.testing.fake_graph import FakeGraph

PEOPLE = 1000
TEMPLATE = "news_update"


def _copies(graph: FakeGraph, marker: str) -> Counter[str]:
    """Template messages per recipient whose second body parameter is ``marker``."""
    found: Counter[str] = Counter()
    for message in graph.sent:
        if message.payload.get("type") != "template":
            continue
        body = next(c for c in message.payload["template"]["components"] if c["type"] == "body")
        if body["parameters"][1]["text"] == marker:
            found[message.to] += 1
    return found


async def _broadcast(client: httpx.AsyncClient, channel_id: int, marker: str) -> int:
    created = await client.post(
        "/api/v1/broadcasts",
        json={
            "channel_id": channel_id,
            "template": {
                "name": TEMPLATE,
                "language": "de",
                "body_parameters": ["{{ contact.name }}", marker],
            },
        },
    )
    assert created.status_code == 201, created.text
    broadcast_id = int(created.json()["id"])
    sent = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send")
    assert sent.status_code == 200, sent.text
    return broadcast_id


async def _stats(client: httpx.AsyncClient, broadcast_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/v1/broadcasts/{broadcast_id}")).json()
    return body


async def _done(client: httpx.AsyncClient, broadcast_id: int, timeout: float) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        body = await _stats(client, broadcast_id)
        return body if body["status"] == "done" else None

    return await async_wait_until(finished, timeout=timeout, message="broadcast done")


async def _conversation_of(client: httpx.AsyncClient, address: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = await list_all(client, "/api/v1/conversations")
        return next((c for c in items if c["contact_address"] == address), None)

    return await async_wait_until(found, timeout=20, message=f"conversation of {address}")


async def test_whatsapp_end_to_end(whatsapp_server: Any, graph_port: int) -> None:
    server = whatsapp_server
    graph = FakeGraph(access_token="EAAG-access-token-x9", app_secret="app-secret-0f1e", seed=42)
    base_url = await graph.start(port=graph_port)
    # Statuses as the platform sends them: late, some duplicated, shuffled, some
    # messages read without a "delivered" first.
    graph.status_delay = 0.05
    graph.duplicate_share = 0.1
    graph.shuffle = True
    graph.skip_delivered_share = 0.1
    graph.add_template(TEMPLATE, "de", body="Hallo {{1}}, heute: {{2}}")
    try:
        async with server.async_client() as client:
            await _run(server, graph, base_url, client)
    finally:
        await graph.close()


async def _run(server: Any, graph: FakeGraph, base_url: str, client: httpx.AsyncClient) -> None:
    # -- connect the number ---------------------------------------------------------------
    created = await client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "Newsroom",
            "config": {
                "phone_number_id": graph.phone_number_id,
                "waba_id": graph.waba_id,
                "access_token": graph.access_token,
                "app_secret": graph.app_secret,
                "display_phone_number": graph.display_phone_number,
                "throughput": 1000,
            },
        },
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert graph.access_token not in created.text and graph.app_secret not in created.text
    channel_id = int(channel["id"])
    assert channel["webhook_url"].endswith(f"/webhooks/whatsapp/{channel_id}")
    hook = f"{server.base_url}/webhooks/whatsapp/{channel_id}"
    graph.webhook_url = hook

    # -- Meta's verification handshake ---------------------------------------------------
    async with httpx.AsyncClient() as meta:
        params = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        ok = await meta.get(hook, params={**params, "hub.verify_token": channel["verify_token"]})
        assert (ok.status_code, ok.text) == (200, "1158201444")
        wrong = await meta.get(hook, params={**params, "hub.verify_token": "guess"})
        assert wrong.status_code == 403

    # -- a bad signature stores nothing --------------------------------------------------
    forged = {
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
                            "messages": [
                                {
                                    "from": "4917999999999",
                                    "id": "wamid.forged",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": "START"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    assert await graph.post_webhook(forged, secret="not-the-app-secret") == 401
    assert await graph.post_webhook(forged, sign=False) == 401
    assert await list_all(client, "/api/v1/contacts", channel_id=channel_id) == []

    # -- templates -------------------------------------------------------------------------
    synced = await client.post(f"/api/v1/channels/{channel_id}/templates/sync")
    assert synced.status_code == 200, synced.text
    listed = (await client.get(f"/api/v1/channels/{channel_id}/templates")).json()["items"]
    assert [(t["name"], t["language"], t["status"]) for t in listed] == [
        (TEMPLATE, "de", "APPROVED")
    ]

    # -- 1,000 people write START through signed webhooks -----------------------------------
    people = [f"49170{i:07d}" for i in range(PEOPLE)]
    started = time.monotonic()
    await gather_bounded(
        [
            lambda p=p, i=i: graph.user_writes(p, "START", name=f"Person {i}")
            for i, p in enumerate(people)
        ],
        limit=32,
    )
    inbound_s = time.monotonic() - started

    async def all_subscribed() -> list[dict[str, Any]] | None:
        found = await list_all(
            client, "/api/v1/contacts", channel_id=channel_id, status="subscribed"
        )
        return found if len(found) == PEOPLE else None

    contacts = await async_wait_until(all_subscribed, timeout=60, message="1000 subscribed")
    assert {c["address"] for c in contacts} == set(people)
    detail = (await client.get(f"/api/v1/contacts/{contacts[0]['id']}")).json()
    assert [(e["kind"], e["source"], e["keyword"]) for e in detail["consent_history"]] == [
        ("opt_in", "keyword", "START")
    ]
    # Each got the welcome (a free-text confirmation inside the window it just opened).
    await async_wait_until(
        _async(lambda: len(graph.count_by_recipient()) == PEOPLE),
        timeout=60,
        message="welcome messages",
    )

    # -- a template broadcast to all of them ---------------------------------------------
    started = time.monotonic()
    first = await _broadcast(client, channel_id, "Run1")
    done = await _done(client, first, timeout=120)
    broadcast_s = time.monotonic() - started
    copies = _copies(graph, "Run1")
    assert set(copies) == set(people) and max(copies.values()) == 1
    sample = graph.received(people[7])[-1].payload["template"]["components"][0]
    assert sample["parameters"][0]["text"] == "Person 7"

    async def statuses_back() -> dict[str, Any] | None:
        stats = (await _stats(client, first))["stats"]
        return stats if stats["delivered"] + stats["read"] == PEOPLE else None

    stats = await async_wait_until(statuses_back, timeout=60, message="statuses flowed back")
    assert stats["total"] == PEOPLE
    assert sum(stats[k] for k in stats if k != "total") == PEOPLE
    assert stats["failed"] == stats["queued"] == stats["deferred"] == 0
    assert done["status"] == "done"

    # -- a reply opens a private conversation; the agent answers in the window ---------------
    asking = people[0]
    await graph.user_writes(asking, "Hallo, wann kommt die nächste Ausgabe?", name="Person 0")
    conversation = await _conversation_of(client, asking)
    assert conversation["status"] == "open"
    answer = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"text": "Morgen früh!"},
    )
    assert answer.status_code == 201, answer.text

    def answered() -> bool:
        return any(
            m.payload.get("text", {}).get("body") == "Morgen früh!" for m in graph.received(asking)
        )

    await async_wait_until(_async(answered), timeout=20, message="the answer")
    assert [
        m.to for m in graph.sent if m.payload.get("text", {}).get("body") == "Morgen früh!"
    ] == [asking]

    # -- outside the 24-hour window a free-text reply is refused, a template is not ----------
    long_ago = str(int(time.time()) - 25 * 3600)
    newcomer = "4917199999999"
    await graph.user_writes(
        newcomer,
        name="Spät",
        message={"type": "text", "text": {"body": "Hallo?"}, "timestamp": long_ago},
    )
    closed = await _conversation_of(client, newcomer)
    shown = (await client.get(f"/api/v1/conversations/{closed['id']}")).json()
    assert shown["window_open"] is False
    refused = await client.post(
        f"/api/v1/conversations/{closed['id']}/messages", json={"text": "Zu spät?"}
    )
    error = assert_error(refused, 422, "invalid")
    assert "24-hour window is closed" in error["message"]
    assert f"{TEMPLATE} (de)" in error["message"]
    templated = await client.post(
        f"/api/v1/conversations/{closed['id']}/messages",
        json={
            "template": {
                "name": TEMPLATE,
                "language": "de",
                "body_parameters": ["{{ contact.name }}", "Antwort"],
            }
        },
    )
    assert templated.status_code == 201, templated.text
    await async_wait_until(
        _async(lambda: bool(graph.received(newcomer))), timeout=20, message="template reply"
    )

    # -- a second broadcast under injected errors ---------------------------------------
    graph.inject(130429, 0.10)
    graph.inject(131026, 0.05)
    graph.network_error_share = 0.02
    graph.network_error_accepts = True  # accepted, but the answer was lost
    requests_before = graph.requests["messages"]
    started = time.monotonic()
    second = await _broadcast(client, channel_id, "Run2")
    final = await _done(client, second, timeout=180)
    faulty_s = time.monotonic() - started
    requests = graph.requests["messages"] - requests_before
    copies = _copies(graph, "Run2")
    failed = await list_all(client, f"/api/v1/broadcasts/{second}/deliveries", status="failed")
    failed_people = {d["address"] for d in failed}
    assert max(copies.values()) == 1, "somebody got the broadcast twice"
    assert set(copies) | failed_people == set(people)
    assert not set(copies) & failed_people
    assert failed, "5 % of sends were answered 131026"
    assert {d["error_code"] for d in failed} == {"131026"}
    assert all("131026" in d["error_reason"] for d in failed)
    stats = final["stats"]
    assert stats["failed"] == len(failed_people)
    assert stats["sent"] + stats["delivered"] + stats["read"] == len(copies)
    print(
        f"\n[whatsapp e2e] {PEOPLE} START webhooks in {inbound_s:.1f}s; "
        f"broadcast 1: {PEOPLE} sends in {broadcast_s:.1f}s ({PEOPLE / broadcast_s:.0f}/s); "
        f"broadcast 2 with errors: {len(copies)} reached, {len(failed_people)} failed 131026, "
        f"{requests - PEOPLE} retries ({requests} send requests), in {faulty_s:.1f}s; "
        f"duplicates: {sum(c - 1 for c in copies.values())}"
    )


def _async(check: Any) -> Any:
    async def wrapped() -> Any:
        return check()

    return wrapped
