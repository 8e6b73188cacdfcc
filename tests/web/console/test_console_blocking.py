"""The contact page's Block / Unblock button and its "messages while blocked" list."""

from __future__ import annotations

from typing import Any

import httpx

from rundfunk.services.actors import Role


async def test_block_button_keeps_the_troll_out_of_the_inbox_and_lists_their_messages(
    console: Any, client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    agent = await console(Role.AGENT)
    first = await phone(tenant.channel_id, "4915100000077", "first insult")
    contact_id = first["contact_id"]
    page = await agent.get(f"/contacts/{contact_id}")
    assert 'id="block-contact"' in page.text and 'id="blocked-messages"' not in page.text

    forged = await agent.post(f"/contacts/{contact_id}/block", csrf=False)
    assert forged.status_code == 403
    blocked = await agent.post(f"/contacts/{contact_id}/block")
    assert blocked.status_code == 303
    for n in range(3):
        assert (await phone(tenant.channel_id, "4915100000077", f"spam {n}"))["action"] == "ignore"

    page = await agent.get(f"/contacts/{contact_id}")
    assert 'id="unblock-contact"' in page.text
    section = page.text.split('id="blocked-messages"')[1]
    assert "3 messages while blocked" in section
    assert all(f"spam {n}" in section for n in range(3))
    inbox = await agent.get("/inbox")
    assert "spam 0" not in inbox.text and "spam 2" not in inbox.text

    unblocked = await agent.post(f"/contacts/{contact_id}/unblock")
    assert unblocked.status_code == 303
    page = await agent.get(f"/contacts/{contact_id}")
    assert 'id="block-contact"' in page.text
    assert "3 messages while blocked" in page.text  # the record stays
    assert (await phone(tenant.channel_id, "4915100000077", "sorry"))["action"] == "conversation"


async def test_blocking_is_for_this_workspace_only_and_speaks_german(
    console: Any, tenant: Any, make_tenant: Any, phone: Any
) -> None:
    first = await phone(tenant.channel_id, "4921", "hi")
    other = await make_tenant("rival")
    rival = await console(Role.OWNER, of=other)
    assert (await rival.post(f"/contacts/{first['contact_id']}/block")).status_code == 404
    assert (await phone(tenant.channel_id, "4921", "still here"))["action"] == "conversation"

    agent = await console(Role.AGENT)
    assert (await agent.post("/account/language", {"locale": "de"})).status_code == 303
    await agent.post(f"/contacts/{first['contact_id']}/block")
    await phone(tenant.channel_id, "4921", "x")
    page = await agent.get(f"/contacts/{first['contact_id']}")
    assert "Nachrichten während der Blockierung" in page.text
    assert "Blockierung aufheben" in page.text
