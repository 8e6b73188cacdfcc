"""The contacts pages over HTTP: list with search, filters, paging and empty states; the
contact page with consent history and conversation; tags; export and erasure (admins)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rundfunk.services.actors import Role
from rundfunk.web.ui import contacts as contacts_ui


@pytest.fixture
async def people(client: httpx.AsyncClient, tenant: Any, phone: Any) -> dict[str, Any]:
    """Ada (subscribed to sport, chatting), Bob (subscribed), Cem (unsubscribed)."""
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    ada = await phone(tenant.channel_id, "4915100000001", "START sport", name="Ada Lovelace")
    talk = await phone(tenant.channel_id, "4915100000001", "Is there a match today?")
    bob = await phone(tenant.channel_id, "4915100000002", "START", name="Bob")
    cem = await phone(tenant.channel_id, "4915100000003", "START", name="Cem")
    await phone(tenant.channel_id, "4915100000003", "STOP")
    return {
        "ada": ada["contact_id"],
        "bob": bob["contact_id"],
        "cem": cem["contact_id"],
        "conversation": talk["conversation_id"],
    }


def _rows(html: str) -> list[str]:
    """The contact names in the table, in order."""
    body = html.split('id="contacts-table"', 1)[-1] if 'id="contacts-table"' in html else ""
    return [
        chunk.split(">", 1)[1].split("<", 1)[0] for chunk in body.split('<a href="/contacts/')[1:]
    ]


async def test_the_list_searches_and_filters(
    console: Any, people: dict[str, Any], tenant: Any
) -> None:
    agent = await console(Role.AGENT)
    everyone = await agent.get("/contacts")
    assert everyone.status_code == 200
    assert _rows(everyone.text) == ["Cem", "Bob", "Ada Lovelace"]  # newest first
    assert "3 contacts" in everyone.text
    assert _rows((await agent.get("/contacts", params={"q": "lovelace"})).text) == ["Ada Lovelace"]
    assert _rows((await agent.get("/contacts", params={"q": "+49 151 000 000 02"})).text) == ["Bob"]
    by_status = await agent.get("/contacts", params={"status": "unsubscribed"})
    assert _rows(by_status.text) == ["Cem"] and "1 of 3 contacts matches" in by_status.text
    assert _rows((await agent.get("/contacts", params={"topic": "sport"})).text) == ["Ada Lovelace"]
    channel = await agent.get("/contacts", params={"channel": str(tenant.channel_id)})
    assert len(_rows(channel.text)) == 3
    assert _rows((await agent.get("/contacts", params={"channel": "999"})).text) == []
    # nonsense in the query string is ignored rather than refused
    assert (
        await agent.get("/contacts", params={"channel": "x", "status": "maybe"})
    ).status_code == 200
    nothing = await agent.get("/contacts", params={"q": "nobody here"})
    assert "No contact matches these filters" in nothing.text and "Clear filters" in nothing.text


async def test_paging_walks_the_whole_list(
    console: Any, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contacts_ui, "PAGE_SIZE", 2)
    agent = await console(Role.AGENT)
    first = await agent.get("/contacts")
    assert _rows(first.text) == ["Cem", "Bob"] and "Next page" in first.text
    second = await agent.get("/contacts", params={"after": str(people["bob"])})
    assert _rows(second.text) == ["Ada Lovelace"]
    assert "Next page" not in second.text and "First page" in second.text


async def test_empty_workspace_says_what_to_do(console: Any) -> None:
    page = await (await console(Role.AGENT)).get("/contacts")
    assert page.status_code == 200
    assert "No contacts yet" in page.text and "START" in page.text


async def test_the_contact_page_shows_consent_topics_and_conversation(
    console: Any, people: dict[str, Any]
) -> None:
    agent = await console(Role.AGENT)
    page = await agent.get(f"/contacts/{people['ada']}")
    assert page.status_code == 200
    html = page.text
    assert "Ada Lovelace" in html and "4915100000001" in html
    consent = html.split('id="consent-history"', 1)[1]
    assert "Opted in" in consent and "<code>START sport</code>" in consent
    assert "Welcome" in consent and "the person" in consent
    assert "<code>sport</code>" in html.split('id="contact-topics"', 1)[1]
    assert f'href="/inbox/{people["conversation"]}"' in html
    assert "Is there a match today?" in html
    # agents see neither export nor erasure
    assert "export.json" not in html and "/erase" not in html
    cem = await agent.get(f"/contacts/{people['cem']}")
    assert "Opted out" in cem.text and "Unsubscribed" in cem.text


async def test_tags_are_saved_checked_and_filterable(console: Any, people: dict[str, Any]) -> None:
    agent = await console(Role.AGENT)
    url = f"/contacts/{people['bob']}/tags"
    saved = await agent.post(url, {"tags": "vip, newsletter, vip"})
    assert saved.status_code == 303
    assert 'value="vip, newsletter"' in (await agent.get(f"/contacts/{people['bob']}")).text
    assert _rows((await agent.get("/contacts", params={"tag": "vip"})).text) == ["Bob"]
    refused = await agent.post(url, {"tags": 'say "hi"'})
    assert refused.status_code == 422
    assert 'id="e-tags"' in refused.text and 'value="say &#34;hi&#34;"' in refused.text
    assert (await agent.post(url, {"tags": "x"}, csrf=False)).status_code == 403


async def test_admins_download_the_export(console: Any, people: dict[str, Any]) -> None:
    admin = await console(Role.ADMIN)
    page = await admin.get(f"/contacts/{people['ada']}")
    assert f'href="/contacts/{people["ada"]}/export.json"' in page.text
    response = await admin.get(f"/contacts/{people['ada']}/export.json")
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="contact-{people["ada"]}.json"'
    data = json.loads(response.text)
    [event] = data["consent_events"]
    assert (event["kind"], event["keyword"]) == ("opt_in", "START sport")
    assert event["text_shown"] and data["contact"]["name"] == "Ada Lovelace"
    for role in (Role.AGENT, Role.EDITOR):
        refused = await (await console(role)).get(f"/contacts/{people['ada']}/export.json")
        assert refused.status_code == 403


async def test_erasure_needs_the_confirmation_step(console: Any, people: dict[str, Any]) -> None:
    admin = await console(Role.ADMIN)
    url = f"/contacts/{people['ada']}/erase"
    confirm = await admin.get(url)
    assert confirm.status_code == 200
    summary = confirm.text.split('id="erase-summary"', 1)[1]
    assert "1 consent event" in summary and "1 conversation" in summary
    assert "Erase for good" in confirm.text
    assert (await admin.post(url, csrf=False)).status_code == 403
    editor = await console(Role.EDITOR)
    assert (await editor.get(url)).status_code == 403
    assert (await editor.post(url)).status_code == 403
    assert (await admin.get(f"/contacts/{people['ada']}")).status_code == 200

    done = await admin.post(url)

    assert done.status_code == 303 and done.headers["location"] == "/contacts"
    assert (await admin.get(f"/contacts/{people['ada']}")).status_code == 404
    assert _rows((await admin.get("/contacts")).text) == ["Cem", "Bob"]


async def test_another_workspace_gets_404(
    console: Any, people: dict[str, Any], make_tenant: Any
) -> None:
    other = await make_tenant("other")
    stranger = await console(Role.OWNER, of=other)
    ada = people["ada"]
    for path in (f"/contacts/{ada}", f"/contacts/{ada}/export.json", f"/contacts/{ada}/erase"):
        assert (await stranger.get(path)).status_code == 404, path
    assert (await stranger.post(f"/contacts/{ada}/erase")).status_code == 404
    assert (await stranger.post(f"/contacts/{ada}/tags", {"tags": "x"})).status_code == 404
    assert _rows((await stranger.get("/contacts")).text) == []
    owner = await console(Role.OWNER)
    assert (await owner.get(f"/contacts/{ada}")).status_code == 200


async def test_a_german_member_reads_the_pages_in_german(
    console: Any, people: dict[str, Any]
) -> None:
    admin = await console(Role.ADMIN)
    assert (await admin.post("/account/language", {"locale": "de"})).status_code == 303
    listed = await admin.get("/contacts", params={"status": "subscribed"})
    assert "2 von 3 Kontakten passen" in listed.text and "Angemeldet" in listed.text
    detail = await admin.get(f"/contacts/{people['ada']}")
    assert "Einwilligungsverlauf" in detail.text and "Eingewilligt" in detail.text
    assert "die Person selbst" in detail.text and "Daten herunterladen (JSON)" in detail.text
    erase = await admin.get(f"/contacts/{people['ada']}/erase")
    assert "1 Einwilligungsereignis" in erase.text and "Endgültig löschen" in erase.text
