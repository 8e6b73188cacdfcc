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


async def test_search_and_tag_filters(client: httpx.AsyncClient, tenant, phone) -> None:
    await phone(tenant.channel_id, "4915100000007", "START", name="Grace Hopper")
    await phone(tenant.channel_id, "4915100000008", "START", name="Alan")
    auth = tenant.auth(Role.AGENT)
    found = (await client.get("/api/v1/contacts", params={"search": "hopper"}, headers=auth)).json()
    assert [c["name"] for c in found["items"]] == ["Grace Hopper"]
    by_number = (
        await client.get("/api/v1/contacts", params={"search": "+49 151 000 000 08"}, headers=auth)
    ).json()
    assert [c["name"] for c in by_number["items"]] == ["Alan"]
    tagged = (await client.get("/api/v1/contacts", params={"tag": "vip"}, headers=auth)).json()
    assert tagged["items"] == []


async def test_export_holds_the_consent_history_and_is_for_admins(
    client: httpx.AsyncClient, tenant, phone, assert_error
) -> None:
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    started = await phone(tenant.channel_id, "4915100000009", "START sport", name="Ada")
    await phone(tenant.channel_id, "4915100000009", "Is there a match today?")
    url = f"/api/v1/contacts/{started['contact_id']}/export"
    for role in (Role.AGENT, Role.EDITOR):
        assert_error(await client.get(url, headers=tenant.auth(role)), 403, "forbidden")
    response = await client.get(url, headers=tenant.auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["format"] == "rundfunk.contact-export/1"
    assert (data["contact"]["name"], data["contact"]["address"]) == ("Ada", "4915100000009")
    [event] = data["consent_events"]
    assert (event["kind"], event["keyword"], event["topic_key"]) == (
        "opt_in",
        "START sport",
        "sport",
    )
    assert "Welcome" in event["text_shown"]
    assert [s["key"] for s in data["subscriptions"]] == ["sport"]
    assert data["conversation"]["id"] and "Is there a match today?" in [
        m["text"] for m in data["messages"]
    ]
    assert data["deliveries"] == []
    assert_error(
        await client.get("/api/v1/contacts/99999/export", headers=tenant.auth()), 404, "not_found"
    )


async def test_delete_erases_the_person_and_keeps_broadcast_totals(
    client: httpx.AsyncClient, tenant, phone, assert_error
) -> None:
    gone = await phone(tenant.channel_id, "4915100000010", "START", name="Erase me")
    await phone(tenant.channel_id, "4915100000011", "START")
    talk = await phone(tenant.channel_id, "4915100000010", "a question")
    auth = tenant.auth()
    broadcast = (
        await client.post(
            "/api/v1/broadcasts", json={"channel_id": tenant.channel_id, "text": "Hi"}, headers=auth
        )
    ).json()
    sent = await client.post(f"/api/v1/broadcasts/{broadcast['id']}/send", headers=auth)
    assert sent.json()["stats"]["total"] == 2
    url = f"/api/v1/contacts/{gone['contact_id']}"
    assert_error(await client.delete(url, headers=tenant.auth(Role.EDITOR)), 403, "forbidden")

    response = await client.delete(url, headers=tenant.auth(Role.ADMIN))

    assert response.status_code == 204 and response.content == b""
    assert_error(await client.get(url, headers=auth), 404, "not_found")
    assert_error(await client.delete(url, headers=auth), 404, "not_found")
    after = (await client.get(f"/api/v1/broadcasts/{broadcast['id']}", headers=auth)).json()
    assert after["stats"]["total"] == 2 - 1
    conversation = await client.get(
        f"/api/v1/conversations/{talk['conversation_id']}", headers=auth
    )
    assert conversation.status_code == 404
    audit = (await client.get("/api/v1/audit", headers=auth)).json()["items"]
    [entry] = [e for e in audit if e["action"] == "contact.erase"]
    assert entry["target_id"] == gone["contact_id"]
    assert "4915100000010" not in str(entry) and "Erase me" not in str(entry)
