"""The topics page over HTTP: list with subscriber counts, create, rename, delete, the
empty state, and who may use it."""

from __future__ import annotations

from typing import Any

import httpx

from rundfunk.services.actors import Role


async def _topic(client: httpx.AsyncClient, tenant: Any, key: str, name: str) -> int:
    response = await client.post(
        "/api/v1/topics", json={"key": key, "name": name}, headers=tenant.auth()
    )
    return int(response.json()["id"])


async def test_empty_state_explains_topics(console: Any) -> None:
    page = await (await console(Role.EDITOR)).get("/topics")
    assert page.status_code == 200
    assert "No topics yet" in page.text and "START sport" in page.text
    assert 'id="f-key"' in page.text


async def test_the_list_shows_keywords_and_subscriber_counts(
    console: Any, client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    await _topic(client, tenant, "sport", "Sport")
    await _topic(client, tenant, "linie-7", "S-Bahn Linie 7")
    await phone(tenant.channel_id, "4901", "START sport")
    await phone(tenant.channel_id, "4902", "START sport")
    await phone(tenant.channel_id, "4903", "START sport")
    await phone(tenant.channel_id, "4903", "STOP")
    page = await (await console(Role.EDITOR)).get("/topics")
    row = page.text.split('id="topic-sport"', 1)[1].split("</tr>", 1)[0]
    assert "<code>START sport</code>" in row and ">2</a>" in row
    assert 'href="/contacts?topic=sport&amp;status=subscribed"' in row
    other = page.text.split('id="topic-linie-7"', 1)[1].split("</tr>", 1)[0]
    assert "S-Bahn Linie 7" in other and ">0</a>" in other
    assert "data-confirm=" in row


async def test_create_validates_next_to_the_field(console: Any) -> None:
    editor = await console(Role.EDITOR)
    created = await editor.post("/topics", {"key": "Sport", "name": "Sport news"})
    assert created.status_code == 303 and created.headers["location"] == "/topics"
    assert "rf_flash=Topic%20created." in created.headers["set-cookie"]
    listed = await editor.get("/topics")
    assert "<code>START sport</code>" in listed.text
    bad = await editor.post("/topics", {"key": "no spaces", "name": "Nope"})
    assert bad.status_code == 422
    assert 'id="e-key"' in bad.text and 'value="no spaces"' in bad.text
    twice = await editor.post("/topics", {"key": "sport", "name": "Again"})
    assert twice.status_code == 422 and "already exists" in twice.text
    unnamed = await editor.post("/topics", {"key": "news"})
    assert unnamed.status_code == 422 and 'id="e-name"' in unnamed.text
    assert (await editor.post("/topics", {"key": "x", "name": "X"}, csrf=False)).status_code == 403


async def test_rename_and_delete(
    console: Any, client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    topic_id = await _topic(client, tenant, "sport", "Sport")
    await phone(tenant.channel_id, "4901", "START sport")
    editor = await console(Role.EDITOR)
    renamed = await editor.post(f"/topics/{topic_id}/rename", {"name": "Sport news"})
    assert renamed.status_code == 303
    assert "Sport news" in (await editor.get("/topics")).text
    blank = await editor.post(f"/topics/{topic_id}/rename", {"name": "  "})
    assert blank.status_code == 422 and f'id="rename-error-{topic_id}"' in blank.text
    # a draft addressed to the topic blocks its deletion, with a message on the page
    draft = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": "Goal!", "topic_keys": ["sport"]},
        headers=tenant.auth(),
    )
    assert draft.status_code == 201, draft.text
    blocked = await editor.post(f"/topics/{topic_id}/delete")
    assert blocked.status_code == 409 and 'id="topics-notice"' in blocked.text
    await client.post(f"/api/v1/broadcasts/{draft.json()['id']}/cancel", headers=tenant.auth())
    assert (await editor.post(f"/topics/{topic_id}/delete", csrf=False)).status_code == 403
    deleted = await editor.post(f"/topics/{topic_id}/delete")
    assert deleted.status_code == 303
    assert "No topics yet" in (await editor.get("/topics")).text
    contact = (await client.get("/api/v1/contacts", headers=tenant.auth())).json()["items"][0]
    detail = (await client.get(f"/api/v1/contacts/{contact['id']}", headers=tenant.auth())).json()
    assert detail["subscriptions"] == [] and detail["status"] == "subscribed"


async def test_agents_may_not_and_other_workspaces_get_404(
    console: Any, client: httpx.AsyncClient, tenant: Any, make_tenant: Any
) -> None:
    topic_id = await _topic(client, tenant, "sport", "Sport")
    agent = await console(Role.AGENT)
    assert (await agent.get("/topics")).status_code == 403
    assert (await agent.post("/topics", {"key": "a", "name": "A"})).status_code == 403
    assert (await agent.post(f"/topics/{topic_id}/delete")).status_code == 403
    stranger = await console(Role.OWNER, of=await make_tenant("other"))
    assert (await stranger.post(f"/topics/{topic_id}/rename", {"name": "Mine"})).status_code == 404
    assert (await stranger.post(f"/topics/{topic_id}/delete")).status_code == 404
    assert "topic-sport" not in (await stranger.get("/topics")).text
    topics = (await client.get("/api/v1/topics", headers=tenant.auth())).json()["items"]
    assert [t["name"] for t in topics] == ["Sport"]


async def test_a_german_editor_reads_the_page_in_german(
    console: Any, client: httpx.AsyncClient, tenant: Any
) -> None:
    await _topic(client, tenant, "sport", "Sport")
    editor = await console(Role.EDITOR)
    await editor.post("/account/language", {"locale": "de"})
    page = await editor.get("/topics")
    assert "Ihre Themen" in page.text and "Abonnenten schreiben" in page.text
    assert "Das Thema Sport löschen? Seine 0 Abonnenten bleiben" in page.text
