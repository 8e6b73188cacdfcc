"""The dashboard page: the first-steps checklist of a fresh workspace, real numbers once
phones have subscribed and written, the funnel of a broadcast, and what each role sees."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import update

from rundfunk.db.tables import deliveries
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime


def _stat(html: str, name: str) -> str:
    found = re.search(rf'data-stat="{name}">([^<]*)<', html)
    assert found, f"no stat {name}"
    return found.group(1)


async def test_a_fresh_workspace_sees_what_to_do_next(console: Any) -> None:
    owner = await console(Role.OWNER)
    page = await owner.get("/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Getting started" in html and "1 of 5 done" in html
    for step in ("Subscribe a phone", "Send your first broadcast", "Answer it in the inbox"):
        assert step in html
    assert 'href="/simulator"' in html and 'href="/broadcasts/new"' in html
    assert "No subscribers yet" in html and "No broadcasts yet" in html
    assert _stat(html, "subscribers") == "0" and _stat(html, "open") == "0"


async def test_the_dashboard_shows_subscribers_conversations_and_funnels(
    console: Any, client: httpx.AsyncClient, tenant: Any, phone: Any, runtime: Runtime
) -> None:
    for address in ("4901", "4902", "4903"):
        await phone(tenant.channel_id, address, "START")
    await phone(tenant.channel_id, "4903", "STOP")
    await phone(tenant.channel_id, "4904", "Where is my parcel?")
    created = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": "Spring sale <b>today</b>"},
        headers=tenant.auth(),
    )
    broadcast_id = created.json()["id"]
    sent = await client.post(f"/api/v1/broadcasts/{broadcast_id}/send", headers=tenant.auth())
    assert sent.status_code == 200, sent.text
    async with runtime.db.write() as conn:  # the phones answered: one read, one delivered
        rows = (
            await conn.execute(deliveries.select().where(deliveries.c.broadcast_id == broadcast_id))
        ).all()
        for row, status in zip(rows, ("read", "delivered"), strict=True):
            await conn.execute(
                update(deliveries).where(deliveries.c.id == row.id).values(status=status)
            )
    editor = await console(Role.EDITOR)
    html = (await editor.get("/dashboard")).text
    assert _stat(html, "subscribers") == "2"
    assert "+3 opt-ins, −1 opt-outs in 30 days" in html
    assert _stat(html, "open") == "1" and _stat(html, "unassigned") == "1"
    assert '<svg class="chart"' in html and "consent-chart" in html
    assert 'href="/inbox?view=unassigned"' in html and 'href="/inbox?view=open"' in html
    assert f'data-broadcast="{broadcast_id}"' in html
    assert "Spring sale &lt;b&gt;today&lt;/b&gt;" in html  # escaped
    assert "Delivery funnel of 2 recipients" in html
    funnel = html[html.index(f'data-broadcast="{broadcast_id}"') :]
    assert re.search(r"Delivered</span>.*?2 <span class=\"muted\">\(100 %\)", funnel, re.S)
    assert re.search(r"Read</span>.*?1 <span class=\"muted\">\(50 %\)", funnel, re.S)
    assert "Send your first broadcast" in html  # reply still missing: checklist stays


async def test_an_agent_sees_the_inbox_part_only(console: Any, tenant: Any, phone: Any) -> None:
    await phone(tenant.channel_id, "4901", "START")
    await phone(tenant.channel_id, "4904", "Hello?")
    agent = await console(Role.AGENT)
    html = (await agent.get("/dashboard")).text
    assert _stat(html, "open") == "1" and _stat(html, "unassigned") == "1"
    assert 'data-stat="subscribers"' not in html
    assert "Last broadcasts" not in html and "Send your first broadcast" not in html
    assert "Subscribers over the last 30 days" not in html
    assert "Ask an admin of your workspace to connect a channel." not in html  # channel is done


async def test_another_workspace_is_not_counted(
    console: Any, make_tenant: Any, tenant: Any, phone: Any
) -> None:
    other = await make_tenant("other")
    await phone(other.channel_id, "4901", "START")
    await phone(other.channel_id, "4902", "a question")
    mine = (await (await console(Role.OWNER)).get("/dashboard")).text
    theirs = (await (await console(Role.OWNER, of=other)).get("/dashboard")).text
    assert _stat(mine, "subscribers") == "0" and _stat(mine, "open") == "0"
    assert _stat(theirs, "subscribers") == "1" and _stat(theirs, "open") == "1"


async def test_the_dashboard_speaks_german(console: Any) -> None:
    owner = await console(Role.OWNER)
    assert (await owner.post("/account/language", {"locale": "de"})).status_code == 303
    html = (await owner.get("/dashboard")).text
    assert "Erste Schritte" in html and "Offene Gespräche" in html


async def test_signed_out_visitors_go_to_the_sign_in_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/dashboard"
