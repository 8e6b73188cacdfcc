"""The first five minutes, in Chromium, across the console: a phone subscribes in the
simulator, an editor broadcasts and watches the progress reach 100 % while the phone
receives it, the phone asks a question that appears live in an agent's open inbox,
and the agent's answer arrives on the phone. Nothing is reloaded by hand; a forged
form post is refused along the way."""

from __future__ import annotations

import re
from typing import Any

from browser_support import member_page, screenshot
from e2e_support import tag


def _stays_put(page: Any) -> None:
    """Mark the page: the mark survives only while the page is never reloaded."""
    page.evaluate("window.neverReloaded = true")


def _never_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.neverReloaded === true"))


def test_subscribe_broadcast_ask_and_answer_live(
    browser: Any, owner_page: Any, server: Any
) -> None:
    marker = tag()[:8]
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Journey {marker}"}
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]

    # 1. A visitor's phone subscribes in the simulator.
    phones = owner_page
    phones.goto(f"/simulator?channel={channel_id}")
    _stays_put(phones)
    thread = phones.locator("#phone-1-messages")
    phones.locator("#phone-1-text").fill("START")
    phones.locator("#phone-1-send").click()
    thread.locator(".msg.theirs", has_text="You will now receive our news").wait_for()

    # 2. The editor (here the owner, in a second tab) broadcasts to the channel.
    editor = phones.context.new_page()
    editor.goto("/broadcasts/new")
    editor.get_by_label("Channel", exact=True).select_option(str(channel_id))
    editor.locator("#recipients").filter(has_text="1 subscriber").wait_for()
    news = f"Journey news {marker} for {{{{ contact.name or 'you' }}}}"
    editor.get_by_label("Text", exact=True).fill(news)
    editor.locator("#preview").filter(has_text=f"Journey news {marker}").wait_for()
    editor.get_by_role("button", name="Review").click()
    editor.get_by_role("heading", name=re.compile(r"Send to 1 subscriber")).wait_for()
    editor.locator("#confirm-send").click()
    editor.wait_for_url(re.compile(r".*/broadcasts/\d+$"))
    editor.locator("#progress-text").filter(has_text="100 %").wait_for()

    # ... and it arrives on the phone in the simulator, which was never reloaded.
    thread.locator(".msg.theirs", has_text=f"Journey news {marker} for you").wait_for()
    assert _never_reloaded(phones)

    # 3. An agent has the inbox open; the phone asks; the conversation appears live.
    agent = member_page(browser, server, role="agent", email=f"agent-{marker}@demo.test")
    agent.goto("/inbox")
    _stays_put(agent)
    question = f"Is the shop open on Sunday? {marker}"
    phones.locator("#phone-1-text").fill(question)
    phones.locator("#phone-1-send").click()
    row = agent.locator("a", has_text=question)
    row.wait_for()
    assert _never_reloaded(agent)
    screenshot(agent, "journey-inbox")

    # 4. The agent answers; the phone receives the answer live.
    row.click()
    agent.wait_for_url(re.compile(r".*/inbox/\d+$"))
    conversation_url = agent.url
    answer = f"Yes, from 10 to 16 o'clock. {marker}"
    agent.locator("#f-text").fill(answer)
    agent.get_by_role("button", name="Send reply").click()
    agent.locator("#thread .msg-out", has_text=answer).wait_for()
    thread.locator(".msg.theirs", has_text=answer).wait_for()
    assert _never_reloaded(phones)
    screenshot(phones, "journey-simulator")

    # 5. A form post that did not come from the console's own page is refused.
    forged = agent.request.post(f"{conversation_url}/note", form={"note": "forged"})
    assert forged.status == 403
    wrong = agent.request.post(
        f"{conversation_url}/note", form={"note": "forged", "csrf_token": "guess"}
    )
    assert wrong.status == 403
    agent.reload()
    assert agent.locator("#thread", has_text="forged").count() == 0

    # 6. The agent cannot reach the broadcast pages, not even by typing the address.
    assert agent.get_by_role("link", name="Broadcasts").count() == 0
    assert agent.goto("/broadcasts/new").status == 403
    agent.context.close()
    editor.close()
