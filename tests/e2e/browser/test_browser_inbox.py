"""The team inbox in Chromium: a phone's question appears live in the open list, the
agent answers (with a canned response typed as /code) and the phone receives it; an
internal note is shown distinct and never reaches the phone; the thread is live too."""

from __future__ import annotations

import re
import uuid
from typing import Any

from browser_support import member_page, screenshot
from e2e_support import wait_until
from playwright.sync_api import expect


def _phone_url(channel_id: int, address: str) -> str:
    return f"/sandbox/{channel_id}/phones/{address}/messages"


def _write(server: Any, channel_id: int, address: str, text: str) -> dict[str, Any]:
    response = server.client.post(_phone_url(channel_id, address), json={"text": text})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def _received(server: Any, channel_id: int, address: str) -> list[str]:
    response = server.client.get(_phone_url(channel_id, address))
    assert response.status_code == 200, response.text
    return [m.get("text") or "" for m in response.json()]


def test_a_question_arrives_live_and_the_answer_reaches_the_phone(
    browser: Any, server: Any
) -> None:
    marker = uuid.uuid4().hex[:8]
    created = server.client.post(
        "/api/v1/channels", json={"kind": "sandbox", "name": f"Inbox {marker}"}
    )
    assert created.status_code == 201, created.text
    channel_id = int(created.json()["id"])
    address = f"4917{int(marker, 16) % 10**8:08d}"
    question = f"Do you deliver on Saturdays? ({marker})"

    page = member_page(browser, server, role="agent", email=f"agent-{marker}@example.test")
    # A canned response, made in the console, to insert by typing /code later.
    page.goto("/inbox/canned")
    page.get_by_label("Short code").fill(f"sat{marker}")
    page.get_by_label("Text", exact=True).fill(f"Yes, Saturdays 9-13. ({marker})")
    page.get_by_role("button", name="Save canned response").click()
    page.get_by_text("The canned response is saved.").wait_for()

    page.goto("/inbox")
    page.get_by_role("heading", name="Inbox").wait_for()
    page.evaluate("window.__stillTheSamePage = true")

    _write(server, channel_id, address, "START")
    conversation_id = _write(server, channel_id, address, question)["conversation_id"]
    row = page.locator(f"#conversation-{conversation_id}")
    row.wait_for()  # appears without a reload
    assert page.evaluate("window.__stillTheSamePage === true")
    assert question in row.inner_text()
    assert page.locator(f'[data-conversation="{conversation_id}"].is-unread .unread').count() == 1
    screenshot(page, "inbox-list")

    row.click()
    page.wait_for_url(re.compile(rf".*/inbox/{conversation_id}$"))
    page.locator(".msg-in", has_text=question).wait_for()
    reply = page.get_by_label(re.compile("^Message to"))
    reply.fill("")
    reply.press_sequentially(f"/sat{marker}")
    page.locator("#canned-suggestions button").first.wait_for()
    reply.press("Enter")  # picks the suggestion instead of a new line
    answer = f"Yes, Saturdays 9-13. ({marker})"
    assert reply.input_value() == answer
    page.get_by_role("button", name="Send reply").click()
    page.get_by_text("Your reply is on its way.").wait_for()
    page.locator(".msg-out", has_text=answer).wait_for()

    secret = f"VIP customer, do not mention prices ({marker})"
    page.get_by_label("Note for the team").fill(secret)
    page.get_by_role("button", name="Add note").click()
    note = page.locator(".msg-note", has_text=secret)
    note.wait_for()
    assert note.locator(".msg-label").text_content() == "Internal note"
    # The thread reloads live, so the checks retry until they see the current element.
    expect(note).to_have_css("background-color", "rgb(255, 247, 219)")  # the note's yellow
    expect(page.locator(".msg-out").first).not_to_have_css("background-color", "rgb(255, 247, 219)")

    wait_until(
        lambda: answer in _received(server, channel_id, address),
        timeout=20,
        message=f"the answer on the phone {address}",
    )
    # The phone writes again: the open thread shows it without a reload.
    follow_up = f"Great, see you then ({marker})"
    page.evaluate("window.__stillTheSamePage = true")
    _write(server, channel_id, address, follow_up)
    page.locator(".msg-in", has_text=follow_up).wait_for()
    assert page.evaluate("window.__stillTheSamePage === true")
    page.locator(".msg-out .badge.delivered, .msg-out .badge.read").first.wait_for()
    assert not any(secret in text for text in _received(server, channel_id, address))
    screenshot(page, "inbox-thread")
    page.context.close()
