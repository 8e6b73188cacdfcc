"""The console's review step cannot be fooled: a text that fails, comes out empty or is too
long for someone in the real audience never reaches "Send to N subscribers now?" (nor can
the confirmation be posted past it); the reason stands next to the text, in German for a
German member. A broadcast whose every send failed shows a red "Failed" badge with the
reason; a send time more than a year ahead is refused."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
from sqlalchemy import select, update

from rundfunk.db.tables import broadcasts, channels, contacts, deliveries
from rundfunk.db.types import utcnow
from rundfunk.services import broadcasts as service
from rundfunk.services import templates
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime

UPPER = "Hallo {{ contact.name.upper() }}"


def form(tenant: Any, **changes: Any) -> dict[str, Any]:
    return {"audience": "all", "when": "now", "channel_id": str(tenant.channel_id), **changes}


def error_of(page: httpx.Response, field: str) -> str:
    found = re.search(rf'id="e-{field}"[^>]*>(.*?)</', page.text, re.S)
    assert found, page.text
    return html.unescape(found.group(1)).strip()


async def _audience(phone: Any, tenant: Any) -> None:
    await phone(tenant.channel_id, "4901", "START", name="Anna")
    await phone(tenant.channel_id, "4902", "START")  # no name
    await phone(tenant.channel_id, "4903", "START", name="Mia")  # the newest: the preview's


async def _count(runtime: Runtime) -> int:
    async with runtime.db.read() as conn:
        return len((await conn.execute(select(broadcasts.c.id))).all())


async def test_review_blocks_a_text_that_fails_for_a_subscriber_the_preview_does_not_show(
    console: Any, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    await _audience(phone, tenant)
    editor = await console(Role.EDITOR)
    page = await editor.post("/broadcasts/review", form(tenant, text=UPPER))
    assert page.status_code == 422
    assert "Send to" not in page.text and 'id="compose"' in page.text
    assert error_of(page, "text") == (
        "For 4902 the text cannot be personalized: 'None' has no attribute 'upper' "
        "1 of 3 recipients checked are affected; nothing was sent."
    )
    assert "Hallo MIA" in page.text  # the preview alone looked fine
    # Posting the confirmation directly is refused the same way; nothing is written.
    confirmed = await editor.post("/broadcasts", form(tenant, text=UPPER))
    assert confirmed.status_code == 422 and "For 4902" in error_of(confirmed, "text")
    assert await _count(runtime) == 0


async def test_review_blocks_an_empty_and_a_too_long_message(
    console: Any, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    await _audience(phone, tenant)
    async with runtime.db.write() as conn:
        await conn.execute(update(contacts).values(attributes={"city": "Köln"}))
        await conn.execute(
            update(contacts).where(contacts.c.address == "4901").values(attributes={})
        )
    editor = await console(Role.EDITOR)
    empty = await editor.post(
        "/broadcasts/review", form(tenant, text="{{ contact.attributes.city | upper }}")
    )
    assert empty.status_code == 422
    assert error_of(empty, "text").startswith("For Anna (4901) the message comes out empty.")
    async with runtime.db.write() as conn:
        await conn.execute(
            update(contacts)
            .where(contacts.c.address == "4901")
            .values(attributes={"city": "x" * 4090})
        )
    long = await editor.post(
        "/broadcasts/review", form(tenant, text="Hallo {{ contact.attributes.city }}!")
    )
    assert long.status_code == 422
    assert error_of(long, "text").startswith(
        "For Anna (4901) the message has 4,097 characters; the channel allows 4,096."
    )
    # A text over the limit as typed (no personalization) is refused at review and confirm.
    for path in ("/broadcasts/review", "/broadcasts"):
        typed = await editor.post(path, form(tenant, text="x" * 4097))
        assert typed.status_code == 422 and "longer than 4096" in error_of(typed, "text")
    assert await _count(runtime) == 0


async def test_a_german_member_reads_the_reason_in_german(
    console: Any, tenant: Any, phone: Any
) -> None:
    await _audience(phone, tenant)
    editor = await console(Role.EDITOR)
    await editor.post("/account/language", {"locale": "de"})
    page = await editor.post("/broadcasts/review", form(tenant, text=UPPER))
    assert page.status_code == 422
    assert error_of(page, "text").startswith(
        "Für 4902 lässt sich der Text nicht personalisieren: 'None' has no attribute 'upper' "
        "1 von 3 geprüften Empfängern sind betroffen; nichts wurde gesendet."
    )


async def test_a_send_time_more_than_a_year_ahead_is_refused(
    console: Any, tenant: Any, phone: Any
) -> None:
    await _audience(phone, tenant)
    editor = await console(Role.EDITOR)
    later = (datetime.now() + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M")
    page = await editor.post(
        "/broadcasts/review", form(tenant, text="Hi", when="later", send_at=later)
    )
    assert page.status_code == 422
    assert error_of(page, "send_at") == "Choose a time within a year from now."


async def test_a_broadcast_whose_every_send_failed_shows_failed_in_red(
    console: Any, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    await _audience(phone, tenant)
    editor = await console(Role.EDITOR)
    answer = await editor.post("/broadcasts", form(tenant, text="News"))
    assert answer.status_code == 303, answer.text
    broadcast_id = int(answer.headers["location"].rsplit("/", 1)[1])
    async with runtime.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .values(status="failed", error_code="131026", error_reason="recipient undeliverable")
        )
    await service.finish_completed(runtime.db)
    page = await editor.get(f"/broadcasts/{broadcast_id}")
    assert '<span class="badge failed" id="status">Failed</span>' in page.text
    assert "all 3 sends failed: recipient undeliverable" in page.text
    assert "data-live-stream" not in page.text and "Cancel broadcast" not in page.text
    listed = await editor.get("/broadcasts")
    assert '<span class="badge failed">Failed</span>' in listed.text
    await editor.post("/account/language", {"locale": "de"})
    german = await editor.get(f"/broadcasts/{broadcast_id}")
    assert '<span class="badge failed" id="status">Fehlgeschlagen</span>' in german.text
    css = (await editor.http.get("/static/app.css")).text.splitlines()
    assert any(".badge.failed" in line and "var(--bad)" in line for line in css)  # red


async def test_line_breaks_posted_as_crlf_count_once_against_the_limit(
    console: Any, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    """A textarea's maxlength counts a line break once, the browser posts it as CRLF."""
    await _audience(phone, tenant)
    editor = await console(Role.EDITOR)
    typed = ("x" * 63 + "\n") * 64  # 4,096 characters as typed
    posted = typed.replace("\n", "\r\n")  # 4,160 as posted
    answer = await editor.post("/broadcasts", form(tenant, text=posted))
    assert answer.status_code == 303, error_of(answer, "text")
    async with runtime.db.read() as conn:
        stored = await conn.scalar(select(broadcasts.c.text))
    assert stored == typed


async def test_every_console_path_that_creates_text_holds_the_limit(
    console: Any, tenant: Any, phone: Any
) -> None:
    """Replies and canned replies, like broadcasts: at most 4,096 (workspace texts:
    test_console_settings; the API's: test_web_conversations, test_web_broadcasts)."""
    await phone(tenant.channel_id, "4911", "START")
    body = await phone(tenant.channel_id, "4911", "Are you open?")
    owner = await console(Role.OWNER)
    url = f"/inbox/{body['conversation_id']}"
    over = "x" * 4097
    reply = await owner.post(url + "/reply", {"text": over})
    assert reply.status_code == 422 and "longer than 4096" in error_of(reply, "text")
    canned = await owner.post("/inbox/canned", {"short_code": "lang", "text": over})
    assert canned.status_code == 422 and "4096" in error_of(canned, "text")
    assert (await owner.post(url + "/reply", {"text": "x" * 4096})).status_code == 303


async def test_a_whatsapp_template_parameter_empty_for_someone_is_refused(
    console: Any, runtime: Runtime, tenant: Any
) -> None:
    """Template broadcasts too: a parameter that personalizes to nothing for a subscriber
    (the platform refuses empty parameters) stops the review next to the template."""
    now = utcnow()
    async with runtime.db.write() as conn:
        added = await conn.execute(
            channels.insert().values(
                workspace_id=tenant.workspace_id, kind="whatsapp", name="Newsroom",
                settings={}, status="active", created_at=now,
            )
        )  # fmt: skip
        channel_id = int(added.inserted_primary_key[0])  # type: ignore[index]
        for address, name in (("491700001", "Jo"), ("491700002", None)):
            await conn.execute(
                contacts.insert().values(
                    workspace_id=tenant.workspace_id, channel_id=channel_id, address=address,
                    name=name, attributes={}, tags=[], status="subscribed", blocked=False,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
    await templates.store_synced(
        runtime.db, workspace_id=tenant.workspace_id, channel_id=channel_id,
        found=[{"name": "news_update", "language": "de", "status": "APPROVED",
                "components": [{"type": "BODY", "text": "Hallo {{1}}, heute: {{2}}"}]}],
    )  # fmt: skip
    editor = await console(Role.EDITOR)
    chosen = form(tenant, channel_id=str(channel_id), template="news_update|de", text="",
                  parameters="{{ contact.name }}\nSonne")  # fmt: skip
    review = await editor.post("/broadcasts/review", chosen)
    assert review.status_code == 422 and "Send to" not in review.text
    assert error_of(review, "template").startswith(
        "For 491700002 the text cannot be personalized: body_parameters[1] is empty"
    )
    fine = {**chosen, "parameters": "{{ contact.name | default('du', true) }}\nSonne"}
    assert "Send to 2 subscribers now?" in (await editor.post("/broadcasts/review", fine)).text


async def test_a_saved_drafts_confirmation_runs_the_review_too(
    console: Any, client: httpx.AsyncClient, tenant: Any, phone: Any
) -> None:
    """A draft made through the API when everyone had a name; then a nameless one joined."""
    await phone(tenant.channel_id, "4901", "START", name="Anna")
    created = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": UPPER},
        headers=tenant.auth(),
    )
    assert created.status_code == 201, created.text
    await phone(tenant.channel_id, "4902", "START")
    base = f"/broadcasts/{created.json()['id']}"
    editor = await console(Role.EDITOR)
    page = await editor.get(base + "/confirm")
    assert "Send to" not in page.text and "This broadcast cannot be sent as it is." in page.text
    reason = re.search(r'id="refused"[^>]*>(.*?)</p>', page.text, re.S)
    assert reason and html.unescape(reason.group(1)).startswith(
        "For 4902 the text cannot be personalized: 'None' has no attribute 'upper'"
    )
    assert re.search(r'id="confirm-send" disabled', page.text)
    sent = await editor.post(base + "/send")  # posted anyway: refused, with the reason
    assert sent.status_code == 303
    assert "For 4902 the text cannot be personalized" in unquote(
        sent.headers.get("set-cookie", "")
    )
    shown = await client.get(f"/api/v1{base}", headers=tenant.auth())
    assert shown.json()["status"] == "draft"
