"""The console's settings page: business name, time zone, legal URLs, confirmation
texts, each validated with the error next to its field; for admins and owners."""

from __future__ import annotations

from typing import Any

import pytest

from rundfunk.services import workspaces
from rundfunk.services.actors import Role
from rundfunk.worker.runtime import Runtime


def form(**changes: str) -> dict[str, str]:
    values = {
        "name": "ACME News",
        "timezone": "Europe/Berlin",
        "imprint_url": "https://acme.test/imprint",
        "privacy_url": "https://acme.test/privacy",
        "welcome_text": "Welcome to {workspace}! Privacy: {privacy_url}",
        "goodbye_text": "Bye from {workspace}.",
        "help_text": "Send STOP to leave {workspace}.",
    }
    return {**values, **changes}


async def test_the_page_shows_the_current_settings(console: Any, tenant: Any) -> None:
    admin = await console(Role.ADMIN)
    page = await admin.get("/settings")
    assert page.status_code == 200
    assert 'value="acme"' in page.text  # the business name
    assert "<option selected>UTC</option>" in page.text
    assert "<option>Europe/Berlin</option>" in page.text
    assert "{privacy_url}" in page.text and "Send STOP at any time" in page.text
    assert f'href="/channels/{tenant.channel_id}/edit"' in page.text  # keywords per channel


async def test_saving_changes_the_workspace(console: Any, tenant: Any, runtime: Runtime) -> None:
    owner = await console(Role.OWNER)
    saved = await owner.post("/settings", form())
    assert saved.status_code == 303, saved.text
    stored = await workspaces.get_settings(runtime.db, tenant.workspace_id)
    assert stored["name"] == "ACME News" and stored["timezone"] == "Europe/Berlin"
    assert stored["imprint_url"] == "https://acme.test/imprint"
    assert stored["goodbye_text"] == "Bye from {workspace}."
    page = await owner.get("/settings")
    assert "<option selected>Europe/Berlin</option>" in page.text
    assert "rf_flash=The%20settings%20are%20saved." in saved.headers["set-cookie"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "not a time zone"),
        ({"imprint_url": "acme.test/imprint"}, "imprint_url", "http:// or https://"),
        ({"privacy_url": "ftp://acme.test"}, "privacy_url", "http:// or https://"),
        ({"welcome_text": "   "}, "welcome_text", "must not be empty"),
        ({"help_text": "x" * 4097}, "help_text", "at most 4096 characters"),
        ({"goodbye_text": "Bye {name}"}, "goodbye_text", "unknown placeholder {name}"),
        ({"welcome_text": "Hi {workspace"}, "welcome_text", "lone {"),
        ({"name": ""}, "name", "1 to 200 characters"),
    ],
)
async def test_a_bad_value_is_refused_next_to_its_field(
    console: Any, tenant: Any, runtime: Runtime, changes: dict[str, str], field: str, message: str
) -> None:
    admin = await console(Role.ADMIN)
    response = await admin.post("/settings", form(**changes))
    assert response.status_code == 422
    assert f'id="e-{field}"' in response.text and message in response.text
    if field != "name":
        assert 'value="ACME News"' in response.text  # what was typed stays
    stored = await workspaces.get_settings(runtime.db, tenant.workspace_id)
    assert stored["name"] == "acme"  # nothing saved


@pytest.mark.parametrize("role", [Role.AGENT, Role.EDITOR])
async def test_below_admin_is_refused(console: Any, role: Role) -> None:
    member = await console(role)
    assert (await member.get("/settings")).status_code == 403
    assert (await member.post("/settings", form())).status_code == 403


async def test_a_post_without_csrf_changes_nothing(
    console: Any, tenant: Any, runtime: Runtime
) -> None:
    owner = await console(Role.OWNER)
    assert (await owner.post("/settings", form(), csrf=False)).status_code == 403
    assert (await workspaces.get_settings(runtime.db, tenant.workspace_id))["name"] == "acme"


async def test_the_settings_of_another_workspace_stay_apart(
    console: Any, make_tenant: Any, tenant: Any, runtime: Runtime
) -> None:
    other = await make_tenant("other")
    theirs = await console(Role.OWNER, of=other)
    assert (await theirs.post("/settings", form(name="Other News"))).status_code == 303
    assert (await workspaces.get_settings(runtime.db, tenant.workspace_id))["name"] == "acme"
    page = await (await console(Role.OWNER)).get("/settings")
    assert "Other News" not in page.text
