"""The console's channels pages: list, add and edit sandbox and WhatsApp channels, the
channel page with webhook URL, verify token, click-to-chat links, QR codes and templates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rundfunk.config import Settings
from rundfunk.services import channels, topics, workspaces
from rundfunk.services.actors import Role, system_actor
from rundfunk.testing.fake_graph import FakeGraph
from rundfunk.worker.runtime import Runtime

ACCESS_TOKEN = "EAAG-console-token-1234"
APP_SECRET = "console-app-secret-5678"


def wa_form(**extra: str) -> dict[str, str]:
    return {
        "kind": "whatsapp",
        "name": "Newsroom",
        "phone_number_id": "1001",
        "waba_id": "2002",
        "display_phone_number": "+49 30 1234567",
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "daily_recipient_cap": "250",
        **extra,
    }


async def add_whatsapp(owner: Any, **extra: str) -> int:
    response = await owner.post("/channels/new", wa_form(**extra))
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/channels/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


@pytest.fixture
def settings(settings: Settings, graph: FakeGraph) -> Settings:
    """The operator points every WhatsApp channel at the fake Graph server."""
    return settings.model_copy(update={"whatsapp_api_base_url": graph.base_url})


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        phone_number_id="1001",
        waba_id="2002",
        seed=3,
    )
    await fake.start()
    fake.add_template("order_update", "de", body="Hallo {{1}}")
    try:
        yield fake
    finally:
        await fake.close()


async def test_the_list_shows_each_channel_with_its_status(
    console: Any, tenant: Any, runtime: Runtime
) -> None:
    await channels.disable_channel(
        runtime.db,
        actor=system_actor(tenant.workspace_id),
        channel_id=tenant.channel_id,
        reason="WhatsApp error 190: token expired",
    )
    admin = await console(Role.ADMIN)
    page = await admin.get("/channels")
    assert page.status_code == 200
    assert "acme sandbox" in page.text and f'href="/channels/{tenant.channel_id}"' in page.text
    assert "disabled" in page.text and "token expired" in page.text
    assert "Add WhatsApp channel" in page.text


async def test_adding_a_sandbox_channel_with_keywords(console: Any, runtime: Runtime) -> None:
    owner = await console(Role.OWNER)
    form = await owner.get("/channels/new?kind=sandbox")
    assert form.status_code == 200 and 'name="kw_opt_in"' in form.text
    created = await owner.post(
        "/channels/new",
        {"kind": "sandbox", "name": "Rehearsal", "kw_opt_in": "JA, Start", "throughput": "50"},
    )
    assert created.status_code == 303, created.text
    channel_id = int(created.headers["location"].rsplit("/", 1)[1])
    settings = await channels.channel_settings(
        runtime.db, actor=owner.member.actor, channel_id=channel_id
    )
    assert settings["keywords"] == {"opt_in": ["JA", "Start"]}
    assert settings["throughput"] == 50.0
    shown = await owner.get(f"/channels/{channel_id}")
    assert "JA, Start" in shown.text and "STOP" in shown.text  # own words, built-in rest
    assert 'href="/simulator"' in shown.text


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": " "}, "name", "name must not be empty"),
        ({"kw_opt_out": "START"}, "kw_opt_out", "in both"),
        ({"throughput": "fast"}, "throughput", "a number"),
        ({"service_window_hours": "-1"}, "service_window_hours", "positive number"),
    ],
)
async def test_a_bad_sandbox_form_shows_the_error_next_to_the_field(
    console: Any, data: dict[str, str], field: str, message: str
) -> None:
    owner = await console(Role.OWNER)
    response = await owner.post("/channels/new", {"kind": "sandbox", "name": "Mine", **data})
    assert response.status_code == 422
    assert f'id="e-{field}"' in response.text, response.text
    assert message in response.text


async def test_a_whatsapp_channel_shows_webhook_verify_token_links_and_qr_codes(
    console: Any, runtime: Runtime
) -> None:
    owner = await console(Role.OWNER)
    await topics.create_topic(runtime.db, actor=owner.member.actor, key="sport", name="Sport")
    channel_id = await add_whatsapp(owner, verify_token="my-verify-token-123")
    page = await owner.get(f"/channels/{channel_id}")
    assert page.status_code == 200
    assert f"/webhooks/whatsapp/{channel_id}" in page.text
    assert "my-verify-token-123" in page.text
    assert ACCESS_TOKEN not in page.text and APP_SECRET not in page.text
    assert "https://wa.me/49301234567?text=START%20sport" in page.text
    assert f'src="/channels/{channel_id}/qr.svg?topic=sport"' in page.text
    qr = await owner.get(f"/channels/{channel_id}/qr.svg", params={"topic": "sport"})
    assert qr.status_code == 200
    assert qr.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in qr.content
    unknown = await owner.get(f"/channels/{channel_id}/qr.svg", params={"topic": "nope"})
    assert unknown.status_code == 404


async def test_without_a_display_number_the_page_says_how_to_get_links(console: Any) -> None:
    owner = await console(Role.OWNER)
    channel_id = await add_whatsapp(owner, display_phone_number="")
    page = await owner.get(f"/channels/{channel_id}")
    assert page.status_code == 200 and "No phone number yet" in page.text
    assert "qr.svg" not in page.text


async def test_whatsapp_form_errors_are_next_to_their_field(console: Any) -> None:
    owner = await console(Role.OWNER)
    response = await owner.post("/channels/new", wa_form(waba_id="abc"))
    assert response.status_code == 422
    assert 'id="e-waba_id"' in response.text and "digits only" in response.text
    assert 'value="abc"' in response.text  # kept
    assert ACCESS_TOKEN not in response.text  # secrets are never sent back
    missing = await owner.post("/channels/new", wa_form(access_token=""))
    assert missing.status_code == 422 and 'id="e-access_token"' in missing.text
    cap = await owner.post("/channels/new", wa_form(daily_recipient_cap="many"))
    assert cap.status_code == 422 and 'id="e-daily_recipient_cap"' in cap.text


async def test_editing_keeps_secrets_left_empty_and_changes_keywords(
    console: Any, runtime: Runtime
) -> None:
    owner = await console(Role.OWNER)
    channel_id = await add_whatsapp(owner, verify_token="first-verify-token")
    form = await owner.get(f"/channels/{channel_id}/edit")
    assert form.status_code == 200
    assert 'value="1001"' in form.text and "stored – leave empty to keep" in form.text
    assert ACCESS_TOKEN not in form.text and "first-verify-token" not in form.text
    saved = await owner.post(
        f"/channels/{channel_id}/edit",
        wa_form(name="Newsroom 2", access_token="", app_secret="", kw_opt_out="HALT, STOP"),
    )
    assert saved.status_code == 303, saved.text
    channel = await channels.get_channel(
        runtime.db, actor=owner.member.actor, channel_id=channel_id, box=runtime.box
    )
    assert channel["name"] == "Newsroom 2"
    assert channel["verify_token"] == "first-verify-token"
    settings = await channels.channel_settings(
        runtime.db, actor=owner.member.actor, channel_id=channel_id
    )
    assert settings["keywords"]["opt_out"] == ["HALT", "STOP"]
    bad = await owner.post(
        f"/channels/{channel_id}/edit", wa_form(kw_opt_in="STOP", kw_opt_out="STOP")
    )
    assert bad.status_code == 422 and 'id="e-kw_opt_out"' in bad.text


async def test_disable_and_activate(console: Any, tenant: Any) -> None:
    admin = await console(Role.ADMIN)
    url = f"/channels/{tenant.channel_id}"
    assert (await admin.post(f"{url}/status", {"status": "disabled"})).status_code == 303
    page = await admin.get(url)
    assert "disabled by an admin" in page.text and ">Activate<" in page.text
    assert (await admin.post(f"{url}/status", {"status": "active"})).status_code == 303
    assert ">Disable<" in (await admin.get(url)).text


async def test_sync_templates_and_a_platform_error_on_the_page(
    console: Any, graph: FakeGraph
) -> None:
    owner = await console(Role.OWNER)
    channel_id = await add_whatsapp(owner)
    synced = await owner.post(f"/channels/{channel_id}/templates/sync")
    assert synced.status_code == 303, synced.text
    assert "order_update" in (await owner.get(f"/channels/{channel_id}")).text
    broken = await add_whatsapp(owner, name="Broken", access_token="EAAG-revoked-token")
    failed = await owner.post(f"/channels/{broken}/templates/sync")
    assert failed.status_code == 502
    assert "The templates could not be synchronized" in failed.text
    assert 'id="templates"' in failed.text  # the channel page, not the error page


@pytest.mark.parametrize("role", [Role.AGENT, Role.EDITOR])
async def test_below_admin_is_refused(console: Any, tenant: Any, role: Role) -> None:
    member = await console(role)
    for path in ("/channels", "/channels/new", f"/channels/{tenant.channel_id}"):
        assert (await member.get(path)).status_code == 403, path
    refused = await member.post("/channels/new", {"kind": "sandbox", "name": "x"})
    assert refused.status_code == 403


async def test_another_workspaces_channel_is_not_found(
    console: Any, make_tenant: Any, tenant: Any
) -> None:
    other = await make_tenant("other")
    admin = await console(Role.ADMIN)
    for path in (f"/channels/{other.channel_id}", f"/channels/{other.channel_id}/edit"):
        assert (await admin.get(path)).status_code == 404, path
    edited = await admin.post(f"/channels/{other.channel_id}/edit", {"name": "mine"})
    assert edited.status_code == 404
    status = await admin.post(f"/channels/{other.channel_id}/status", {"status": "disabled"})
    assert status.status_code == 404


async def test_posts_need_the_csrf_token(console: Any, tenant: Any) -> None:
    admin = await console(Role.ADMIN)
    refused = await admin.post("/channels/new", {"kind": "sandbox", "name": "x"}, csrf=False)
    assert refused.status_code == 403
    assert "acme sandbox" in (await admin.get("/channels")).text
    assert ">x<" not in (await admin.get("/channels")).text


async def test_the_business_profile_is_shown_and_saved_with_the_imprint_urls(
    console: Any, graph: FakeGraph, runtime: Runtime
) -> None:
    owner = await console(Role.OWNER)
    await workspaces.update_settings(
        runtime.db,
        actor=owner.member.actor,
        changes={"imprint_url": "https://acme.test/imprint"},
    )
    channel_id = await add_whatsapp(owner)
    graph.profile["about"] = "Lokalnachrichten"
    shown = await owner.get(f"/channels/{channel_id}/profile")
    assert shown.status_code == 200 and 'value="Lokalnachrichten"' in shown.text
    too_long = await owner.post(f"/channels/{channel_id}/profile", {"about": "x" * 140})
    assert too_long.status_code == 422 and 'id="e-about"' in too_long.text
    saved = await owner.post(
        f"/channels/{channel_id}/profile", {"about": "Neu hier", "vertical": "RETAIL"}
    )
    assert saved.status_code == 303, saved.text
    assert graph.profile["about"] == "Neu hier" and graph.profile["vertical"] == "RETAIL"
    assert graph.profile["websites"] == ["https://acme.test/imprint"]
    broken = await add_whatsapp(owner, name="Broken", access_token="EAAG-revoked-token")
    failed = await owner.get(f"/channels/{broken}/profile")
    assert failed.status_code == 200 and "could not be asked for the profile" in failed.text
