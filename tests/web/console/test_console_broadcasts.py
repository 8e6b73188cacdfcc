"""The console's broadcasts over HTTP: list, compose with preview and recipient count, the
confirmation step, sending and scheduling, live progress, pause / resume / cancel, and
who may do what (agents: 403; another workspace's ids: 404; no CSRF: 403)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from rundfunk.db.tables import broadcasts, channels, contacts, deliveries
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views as views
from rundfunk.services import templates
from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime

FORM = {"audience": "all", "text": "Hallo {{ contact.name }}!", "when": "now"}


@pytest.fixture
async def audience(client: httpx.AsyncClient, tenant: Any, phone: Any) -> list[str]:
    """Three subscribers (the newest named Mia, one also in the topic sport), one who only wrote."""
    await client.post(
        "/api/v1/topics", json={"key": "sport", "name": "Sport"}, headers=tenant.auth()
    )
    await phone(tenant.channel_id, "4901", "START")
    await phone(tenant.channel_id, "4902", "START sport")
    await phone(tenant.channel_id, "4903", "START", name="Mia")
    await phone(tenant.channel_id, "4904", "hello")
    return ["4901", "4902", "4903"]


def form(tenant: Any, **changes: Any) -> dict[str, Any]:
    return {**FORM, "channel_id": str(tenant.channel_id), **changes}


async def api_draft(client: httpx.AsyncClient, tenant: Any, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/broadcasts",
        json={"channel_id": tenant.channel_id, "text": "News", **body},
        headers=tenant.auth(),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def flash_of(response: httpx.Response) -> str:
    """The message a redirect leaves for the next page (the flash cookie)."""
    found = re.search(r"rf_flash=([^;]*)", response.headers.get("set-cookie", ""))
    return unquote(found.group(1)).strip('"') if found else ""


async def sent_broadcast(editor: Any, tenant: Any) -> int:
    answer = await editor.post("/broadcasts", form(tenant))
    assert answer.status_code == 303, answer.text
    assert flash_of(answer) == "Sending started."
    found = re.fullmatch(r"/broadcasts/(\d+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


async def status_of(runtime: Runtime, tenant: Any, broadcast_id: int) -> str:
    async with runtime.db.read() as conn:
        return str(
            await conn.scalar(select(broadcasts.c.status).where(broadcasts.c.id == broadcast_id))
        )


# --- roles, isolation, CSRF ---------------------------------------------------------


async def test_an_agent_sees_no_entry_and_gets_403_everywhere(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str]
) -> None:
    draft = await api_draft(client, tenant)
    agent = await console(Role.AGENT)
    assert 'href="/broadcasts"' not in (await agent.get("/account")).text
    base = f"/broadcasts/{draft['id']}"
    count = f"/broadcasts/audience?channel_id={tenant.channel_id}"
    pages = ["/broadcasts", "/broadcasts/new", base, f"{base}/live", f"{base}/events"]
    for path in (*pages, f"{base}/deliveries", f"{base}/confirm", count):
        assert (await agent.get(path)).status_code == 403, path
    for path in ("/broadcasts", "/broadcasts/preview", "/broadcasts/review", "/broadcasts/edit",
                 f"{base}/send", f"{base}/pause", f"{base}/resume", f"{base}/cancel"):  # fmt: skip
        assert (await agent.post(path, form(tenant))).status_code == 403, path
    editor = await console(Role.EDITOR)
    assert 'href="/broadcasts"' in (await editor.get("/account")).text


async def test_another_workspaces_broadcast_is_404(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str], make_tenant: Any
) -> None:
    draft = await api_draft(client, tenant)
    other = await console(Role.OWNER, of=await make_tenant("other"))
    base = f"/broadcasts/{draft['id']}"
    for path in (base, f"{base}/live", f"{base}/events", f"{base}/confirm"):
        assert (await other.get(path)).status_code == 404, path
    for action in ("send", "pause", "resume", "cancel"):
        assert (await other.post(f"{base}/{action}")).status_code == 404, action
    assert await status_of_api(client, tenant, draft["id"]) == "draft"
    # Nor can another workspace's channel be counted or used.
    count = await other.get(f"/broadcasts/audience?channel_id={tenant.channel_id}")
    assert "3" not in count.text
    refused = await other.post("/broadcasts/review", form(tenant))
    assert refused.status_code == 422 and 'id="e-channel_id"' in refused.text


async def status_of_api(client: httpx.AsyncClient, tenant: Any, broadcast_id: int) -> str:
    shown = await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=tenant.auth())
    return str(shown.json()["status"])


async def test_posts_without_the_csrf_token_are_refused(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    draft = await api_draft(client, tenant)
    base = f"/broadcasts/{draft['id']}"
    for path in ("/broadcasts", "/broadcasts/preview", "/broadcasts/review", f"{base}/send",
                 f"{base}/cancel"):  # fmt: skip
        assert (await editor.post(path, form(tenant), csrf=False)).status_code == 403, path
    assert await status_of_api(client, tenant, draft["id"]) == "draft"
    assert len(await views.list_broadcasts(client_db(client), actor=editor.member.actor)) == 1


def client_db(client: httpx.AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.runtime.db  # type: ignore[attr-defined]


# --- list --------------------------------------------------------------------------------


async def test_the_empty_list_says_what_to_do(console: Any, tenant: Any) -> None:
    page = await (await console(Role.EDITOR)).get("/broadcasts")
    assert page.status_code == 200
    assert "No broadcasts yet" in page.text and 'href="/broadcasts/new"' in page.text


async def test_the_list_shows_status_channel_audience_and_counts(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    await api_draft(client, tenant, text="Only sport", topic_keys=["sport"])
    sent_id = await sent_broadcast(editor, tenant)
    page = await editor.get("/broadcasts")
    assert page.status_code == 200
    assert f'href="/broadcasts/{sent_id}"' in page.text and "Hallo {{ contact.name }}!" in page.text
    assert '<span class="badge sending">Sending</span>' in page.text
    assert '<span class="badge draft">Draft</span>' in page.text
    assert "acme sandbox" in page.text and "Topics: Sport" in page.text
    assert "All subscribers" in page.text


# --- compose: preview and recipient count ---------------------------------------------


async def test_compose_shows_channels_topics_count_and_a_preview(
    console: Any, tenant: Any, audience: list[str]
) -> None:
    page = await (await console(Role.EDITOR)).get("/broadcasts/new")
    assert page.status_code == 200
    assert f'<option value="{tenant.channel_id}" data-kind="sandbox" selected>' in page.text
    assert 'name="topics" value="sport"' in page.text
    assert "3 subscribers will receive this" in page.text
    assert 'id="preview"' in page.text and "newest subscriber" in page.text
    assert '<script src="/static/compose.js' in page.text and "<script>" not in page.text
    assert 'type="datetime-local"' in page.text


async def test_preview_personalizes_for_the_newest_subscriber(
    console: Any, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    shown = await editor.post("/broadcasts/preview", form(tenant))
    assert shown.status_code == 200
    assert "Hallo Mia!" in shown.text and "Mia, the newest subscriber" in shown.text
    broken = await editor.post("/broadcasts/preview", form(tenant, text="Hi {{ contact.nme"))
    assert broken.status_code == 200 and 'class="phone-error"' in broken.text


async def test_preview_uses_a_sample_contact_without_subscribers(console: Any, tenant: Any) -> None:
    shown = await (await console(Role.EDITOR)).post("/broadcasts/preview", form(tenant))
    assert "Hallo Alex!" in shown.text and "sample contact named Alex" in shown.text


async def test_the_recipient_count_follows_channel_and_topics(
    console: Any, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    base = f"/broadcasts/audience?channel_id={tenant.channel_id}"
    assert "3 subscribers will receive this" in (await editor.get(base)).text
    one = await editor.get(f"{base}&audience=topics&topics=sport")
    assert "1 subscriber will receive this" in one.text
    assert "Nobody would receive this" in (await editor.get(f"{base}&audience=topics")).text
    assert "Choose a channel" in (await editor.get("/broadcasts/audience?channel_id=x")).text


# --- the confirmation step ---------------------------------------------------------------


async def test_review_names_the_count_and_writes_nothing(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    page = await editor.post("/broadcasts/review", form(tenant))
    assert page.status_code == 200, page.text
    assert "Send to 3 subscribers now?" in page.text
    assert 'name="text" value="Hallo {{ contact.name }}!"' in page.text
    assert 'formaction="/broadcasts/edit"' in page.text and "Hallo Mia!" in page.text
    assert await views.list_broadcasts(runtime.db, actor=editor.member.actor) == []
    topic = await editor.post("/broadcasts/review", form(tenant, audience="topics", topics="sport"))
    assert "Send to 1 subscriber now?" in topic.text
    assert 'name="topics" value="sport"' in topic.text
    back = await editor.post("/broadcasts/edit", form(tenant, audience="topics", topics="sport"))
    assert back.status_code == 200
    assert 'value="topics" checked' in back.text and 'value="sport" checked' in back.text


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"text": ""}, "text", "a message needs text or media"),
        ({"text": "Hi {{ contact.name"}, "text", "text:"),
        ({"text": "Hi {{ secret }}"}, "text", "unknown variable"),
        ({"audience": "topics"}, "audience", "Choose at least one topic"),
        ({"media_url": "ftp://x"}, "media_url", "http(s) URL"),
        ({"when": "later", "send_at": ""}, "send_at", "Enter the date and time"),
        ({"when": "later", "send_at": "2001-01-01T09:00"}, "send_at", "in the future"),
        ({"channel_id": "4242"}, "channel_id", "no channel"),
        ({"channel_id": ""}, "channel_id", "Choose a channel"),
    ],
    ids=lambda v: str(v)[:30],
)
async def test_review_errors_stand_next_to_their_field(
    console: Any, tenant: Any, audience: list[str], changes: dict[str, str], field: str,
    fragment: str,
) -> None:  # fmt: skip
    editor = await console(Role.EDITOR)
    page = await editor.post("/broadcasts/review", form(tenant, **changes))
    assert page.status_code == 422, page.text
    assert f'id="e-{field}"' in page.text and fragment in page.text
    assert 'id="compose"' in page.text  # the form again, with what was typed
    if changes.get("text"):
        assert changes["text"] in page.text


async def test_an_empty_audience_is_refused_at_review(console: Any, tenant: Any) -> None:
    page = await (await console(Role.EDITOR)).post("/broadcasts/review", form(tenant))
    assert page.status_code == 422 and 'id="e-audience"' in page.text
    assert "audience is empty" in page.text


# --- sending, scheduling, the broadcast's page -------------------------------------------


async def test_confirming_sends_and_shows_progress_and_deliveries(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    broadcast_id = await sent_broadcast(editor, tenant)
    assert await status_of(runtime, tenant, broadcast_id) == "sending"
    page = await editor.get(f"/broadcasts/{broadcast_id}")
    assert page.status_code == 200
    assert 'id="progress"' in page.text and 'aria-valuenow="0"' in page.text
    assert f'data-live-stream="/broadcasts/{broadcast_id}/events"' in page.text
    assert all(address in page.text for address in audience) and "4904" not in page.text
    assert "Pause" in page.text and 'data-confirm="Cancel this broadcast?' in page.text
    assert f"· {editor.member.name}" in page.text  # who wrote it, by name
    table = await editor.get(f"/broadcasts/{broadcast_id}/deliveries?status=queued")
    assert table.status_code == 200 and "<html" not in table.text
    assert all(address in table.text for address in audience)
    assert (
        "4901" not in (await editor.get(f"/broadcasts/{broadcast_id}/deliveries?status=read")).text
    )


async def test_progress_and_failures_by_reason_follow_the_deliveries(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    broadcast_id = await sent_broadcast(editor, tenant)
    async with runtime.db.write() as conn:
        ids = list(
            await conn.scalars(
                select(deliveries.c.id)
                .where(deliveries.c.broadcast_id == broadcast_id)
                .order_by(deliveries.c.id)
            )
        )
        await conn.execute(
            update(deliveries).where(deliveries.c.id.in_(ids[:2])).values(status="read")
        )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == ids[2])
            .values(status="failed", error_code="131026", error_reason="recipient undeliverable")
        )
    live = await editor.get(f"/broadcasts/{broadcast_id}/live")
    assert live.status_code == 200 and "<html" not in live.text
    assert 'aria-valuenow="100"' in live.text and "100 %" in live.text
    assert "recipient undeliverable" in live.text and "131026" in live.text
    assert "Delivery funnel" in live.text and "(67 %)" in live.text  # 2 of 3 read
    failed = await editor.get(f"/broadcasts/{broadcast_id}?status=failed")
    assert failed.text.count('<span class="badge failed">Failed</span>') == 2  # table + reason


async def test_deliveries_are_paginated(
    console: Any, runtime: Runtime, tenant: Any, phone: Any
) -> None:
    for number in range(55):
        await phone(tenant.channel_id, f"49{number:04d}", "START")
    editor = await console(Role.EDITOR)
    broadcast_id = await sent_broadcast(editor, tenant)
    first = await editor.get(f"/broadcasts/{broadcast_id}")
    found = re.search(rf'href="/broadcasts/{broadcast_id}\?after=(\d+)" rel="next"', first.text)
    assert found and "490049" in first.text and "490050" not in first.text
    second = await editor.get(f"/broadcasts/{broadcast_id}?after={found.group(1)}")
    assert (
        "490050" in second.text and "490000" not in second.text and 'rel="next"' not in second.text
    )


async def test_scheduling_uses_the_workspace_time_zone(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    owner = await console(Role.OWNER)
    await ws.update_settings(
        runtime.db, actor=owner.member.actor, changes={"timezone": "Europe/Berlin"}
    )
    editor = await console(Role.EDITOR)
    local = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)).replace(
        hour=9, minute=30, second=0, microsecond=0, tzinfo=None
    )
    typed = local.strftime("%Y-%m-%dT%H:%M")
    review = await editor.post("/broadcasts/review", form(tenant, when="later", send_at=typed))
    assert "Schedule for 3 subscribers on" in review.text and "Schedule broadcast" in review.text
    answer = await editor.post("/broadcasts", form(tenant, when="later", send_at=typed))
    assert answer.status_code == 303 and flash_of(answer) == "Broadcast scheduled."
    [created] = await views.list_broadcasts(runtime.db, actor=editor.member.actor)
    assert created["status"] == "scheduled"
    expected = local.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    assert created["send_at"] == expected
    page = await editor.get(f"/broadcasts/{created['id']}")
    assert "Sending starts on" in page.text and "Review and send now" in page.text


async def test_pause_resume_and_cancel(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    broadcast_id = await sent_broadcast(editor, tenant)
    base = f"/broadcasts/{broadcast_id}"
    assert (await editor.post(f"{base}/pause")).status_code == 303
    assert await status_of(runtime, tenant, broadcast_id) == "paused"
    assert "Resume" in (await editor.get(base)).text
    assert (await editor.post(f"{base}/resume")).status_code == 303
    assert await status_of(runtime, tenant, broadcast_id) == "sending"
    assert (await editor.post(f"{base}/cancel")).status_code == 303
    assert await status_of(runtime, tenant, broadcast_id) == "cancelled"
    again = await editor.post(f"{base}/pause")
    assert again.status_code == 303 and again.headers["location"] == base
    assert flash_of(again).startswith("Not possible any more")
    assert "data-live-stream" not in (await editor.get(base)).text
    assert await status_of(runtime, tenant, broadcast_id) == "cancelled"


async def test_resume_never_starts_a_draft(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str]
) -> None:
    draft = await api_draft(client, tenant)
    editor = await console(Role.EDITOR)
    await editor.post(f"/broadcasts/{draft['id']}/resume")
    assert await status_of_api(client, tenant, draft["id"]) == "draft"


async def test_a_saved_draft_is_sent_after_its_confirmation(
    console: Any, client: httpx.AsyncClient, tenant: Any, audience: list[str]
) -> None:
    draft = await api_draft(client, tenant, topic_keys=["sport"])
    editor = await console(Role.EDITOR)
    detail = await editor.get(f"/broadcasts/{draft['id']}")
    assert f'href="/broadcasts/{draft["id"]}/confirm"' in detail.text
    confirm = await editor.get(f"/broadcasts/{draft['id']}/confirm")
    assert "Send to 1 subscriber now?" in confirm.text and "Sport" in confirm.text
    sent = await editor.post(f"/broadcasts/{draft['id']}/send")
    assert sent.status_code == 303
    assert await status_of_api(client, tenant, draft["id"]) == "sending"
    done = await editor.get(f"/broadcasts/{draft['id']}/confirm")  # no second confirmation
    assert done.status_code == 303 and done.headers["location"] == f"/broadcasts/{draft['id']}"


async def test_a_german_member_reads_german(
    console: Any, runtime: Runtime, tenant: Any, audience: list[str]
) -> None:
    editor = await console(Role.EDITOR)
    await editor.post("/account/language", {"locale": "de"})
    page = await editor.get("/broadcasts/new")
    assert 'lang="de"' in page.text and "Neuer Broadcast" in page.text
    assert "3 Abonnenten erhalten diese Nachricht" in page.text
    refused = await editor.post("/broadcasts/review", form(tenant, audience="topics"))
    assert "Wählen Sie mindestens ein Thema" in refused.text


# --- WhatsApp: the template picker --------------------------------------------------------


@pytest.fixture
async def whatsapp(runtime: Runtime, tenant: Any) -> int:
    """A WhatsApp channel with a synced approved template and one subscriber named Jo."""
    now = utcnow()
    async with runtime.db.write() as conn:
        channel_id = int(
            (
                await conn.execute(
                    channels.insert().values(
                        workspace_id=tenant.workspace_id, kind="whatsapp", name="Newsroom",
                        settings={}, status="active", created_at=now,
                    )
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )  # fmt: skip
        await conn.execute(
            contacts.insert().values(
                workspace_id=tenant.workspace_id, channel_id=channel_id, address="491700001",
                name="Jo", attributes={}, tags=[], status="subscribed", blocked=False,
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    body = {"type": "BODY", "text": "Hallo {{1}}, heute: {{2}}"}
    await templates.store_synced(
        runtime.db, workspace_id=tenant.workspace_id, channel_id=channel_id,
        found=[
            {"name": "news_update", "language": "de", "status": "APPROVED", "components": [body]},
            {"name": "paused_one", "language": "de", "status": "PAUSED", "components": [body]},
        ],
    )  # fmt: skip
    return channel_id


async def test_whatsapp_broadcasts_pick_an_approved_template(
    console: Any, runtime: Runtime, tenant: Any, whatsapp: int
) -> None:
    editor = await console(Role.EDITOR)
    page = await editor.get("/broadcasts/new")
    assert 'value="news_update|de"' in page.text and "paused_one" not in page.text
    assert f'data-channel="{whatsapp}"' in page.text
    chosen = form(tenant, channel_id=str(whatsapp), template="news_update|de", text="",
                  parameters="{{ contact.name }}\nSonne")  # fmt: skip
    shown = await editor.post("/broadcasts/preview", chosen)
    assert "Hallo Jo, heute: Sonne" in shown.text
    wrong = await editor.post("/broadcasts/review", {**chosen, "parameters": "only one"})
    assert wrong.status_code == 422 and 'id="e-template"' in wrong.text
    assert "needs 2 parameter(s), got 1" in wrong.text
    no_template = await editor.post("/broadcasts/review", {**chosen, "template": "", "text": "Hi"})
    assert no_template.status_code == 422 and "approved template" in no_template.text
    review = await editor.post("/broadcasts/review", chosen)
    assert "Send to 1 subscriber now?" in review.text
    created = await editor.post("/broadcasts", chosen)
    assert created.status_code == 303
    [broadcast] = await views.list_broadcasts(runtime.db, actor=editor.member.actor)
    assert broadcast["template"]["name"] == "news_update"
    assert broadcast["template"]["body_parameters"] == ["{{ contact.name }}", "Sonne"]
    assert broadcast["status"] == "sending"
