"""Contacts through the API after simulated phones opt in and out."""

from __future__ import annotations

import httpx

from rundfunk.services.actors import Role


async def test_start_makes_a_subscribed_contact_with_consent_history(
    client: httpx.AsyncClient, tenant, phone
) -> None:
    result = await phone(tenant.channel_id, "+4915100000001", "START", name="Ada")
    assert result["action"] == "opt_in"
    assert result["duplicate"] is False
    assert isinstance(result["message_id"], int)

    listed = (
        await client.get(
            "/api/v1/contacts",
            params={"channel_id": tenant.channel_id, "status": "subscribed"},
            headers=tenant.auth(Role.AGENT),
        )
    ).json()
    assert listed["next_after_id"] is None
    [contact] = listed["items"]
    assert contact["address"] == "+4915100000001"
    assert contact["name"] == "Ada"
    assert contact["status"] == "subscribed"
    assert contact["id"] == result["contact_id"]

    detail = (await client.get(f"/api/v1/contacts/{contact['id']}", headers=tenant.auth())).json()
    assert detail["subscriptions"] == []
    [event] = detail["consent_history"]
    assert event["kind"] == "opt_in"
    assert event["source"] == "keyword"
    assert event["keyword"] == "START"
    assert event["actor"] == "contact"
    assert "Welcome" in event["text_shown"]
    assert event["created_at"].endswith(("Z", "+00:00"))


async def test_topic_opt_in_and_opt_out_show_up(client: httpx.AsyncClient, tenant, phone) -> None:
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    result = await phone(tenant.channel_id, "4917", "START sport")
    await phone(tenant.channel_id, "4918", "START")
    await phone(tenant.channel_id, "4919", "START")
    await phone(tenant.channel_id, "4919", "STOP")

    def addresses(body: dict) -> list[str]:
        return [c["address"] for c in body["items"]]

    auth = tenant.auth()
    by_topic = (
        await client.get("/api/v1/contacts", params={"topic": "sport"}, headers=auth)
    ).json()
    assert addresses(by_topic) == ["4917"]
    gone = (
        await client.get("/api/v1/contacts", params={"status": "unsubscribed"}, headers=auth)
    ).json()
    assert addresses(gone) == ["4919"]
    detail = (await client.get(f"/api/v1/contacts/{result['contact_id']}", headers=auth)).json()
    assert [s["key"] for s in detail["subscriptions"]] == ["sport"]
    history = (await client.get(f"/api/v1/contacts/{gone['items'][0]['id']}", headers=auth)).json()[
        "consent_history"
    ]
    assert [e["kind"] for e in history] == ["opt_in", "opt_out"]


async def test_contacts_page_with_after_id(client: httpx.AsyncClient, tenant, phone) -> None:
    for n in range(5):
        await phone(tenant.channel_id, f"49{n}", "START")
    auth = tenant.auth()
    seen: list[str] = []
    after_id = 0
    for _ in range(5):
        page = (
            await client.get(
                "/api/v1/contacts", params={"limit": 2, "after_id": after_id}, headers=auth
            )
        ).json()
        seen += [c["address"] for c in page["items"]]
        if page["next_after_id"] is None:
            break
        after_id = page["next_after_id"]
    assert seen == [f"49{n}" for n in range(5)]


async def test_contact_filters_are_checked(client: httpx.AsyncClient, tenant, assert_error) -> None:
    auth = tenant.auth()
    assert_error(
        await client.get("/api/v1/contacts", params={"status": "maybe"}, headers=auth),
        422,
        "invalid",
        "query.status",
    )
    assert_error(
        await client.get("/api/v1/contacts", params={"limit": 0}, headers=auth),
        422,
        "invalid",
        "query.limit",
    )
    assert_error(
        await client.get("/api/v1/contacts", params={"limit": 100000}, headers=auth),
        422,
        "invalid",
        "query.limit",
    )
    assert_error(
        await client.get("/api/v1/contacts", params={"after_id": -1}, headers=auth),
        422,
        "invalid",
        "query.after_id",
    )
    assert_error(await client.get("/api/v1/contacts/12345", headers=auth), 404, "not_found")
