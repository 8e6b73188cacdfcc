"""The console's team page (invite, change role, remove) and the public invitation page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from rundfunk.services import sessions
from rundfunk.services.actors import Role
from rundfunk.web.ui.session import FORM_COOKIE, SESSION_COOKIE
from rundfunk.worker.runtime import Runtime

LINK = re.compile(r'value="(http://[^"]+/invite/([\w-]+))"')


async def invite(admin: Any, email: str = "ana@acme.test", role: str = "agent") -> str:
    response = await admin.post("/team/invite", {"email": email, "name": "Ana", "role": role})
    assert response.status_code == 200, response.text
    match = LINK.search(response.text)
    assert match, response.text
    return match.group(2)


async def test_the_team_page_lists_members_with_their_roles(console: Any) -> None:
    admin = await console(Role.ADMIN)
    page = await admin.get("/team")
    assert page.status_code == 200
    for role in Role:
        assert f"{role.value}@acme.test" in page.text
    assert "(you)" in page.text
    # An admin may not hand out the owner role, nor change an owner.
    assert '<option value="owner"' not in page.text
    owner_page = await (await console(Role.OWNER)).get("/team")
    assert '<option value="owner"' in owner_page.text


async def test_an_invitation_link_is_shown_once_and_signs_the_new_member_in(
    console: Any, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await console(Role.ADMIN)
    token = await invite(admin)
    listed = await admin.get("/team")
    assert "ana@acme.test" in listed.text and "invited" in listed.text
    assert token not in listed.text  # shown once only

    public = await client.get(f"/invite/{token}")
    assert public.status_code == 200
    assert "Welcome, Ana" in public.text and "as Agent" in public.text
    form_cookie = public.cookies[FORM_COOKIE]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', public.text)
    assert csrf and csrf.group(1) == form_cookie
    cookies = {"cookie": f"{FORM_COOKIE}={form_cookie}"}

    short = await client.post(
        f"/invite/{token}", data={"csrf_token": form_cookie, "password": "short"}, headers=cookies
    )
    assert short.status_code == 422 and 'id="e-password"' in short.text
    no_csrf = await client.post(f"/invite/{token}", data={"password": "a good password"})
    assert no_csrf.status_code == 403

    accepted = await client.post(
        f"/invite/{token}",
        data={"csrf_token": form_cookie, "password": "a good password"},
        headers=cookies,
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/dashboard"
    member = await sessions.session_member(runtime.db, accepted.cookies[SESSION_COOKIE])
    assert member is not None and member.email == "ana@acme.test" and member.role is Role.AGENT
    used = await client.get(f"/invite/{token}")
    assert used.status_code == 404 and "cannot be used" in used.text


async def test_invitation_form_errors(console: Any) -> None:
    admin = await console(Role.ADMIN)
    bad = await admin.post("/team/invite", {"email": "nobody", "name": "X", "role": "agent"})
    assert bad.status_code == 422 and 'id="e-email"' in bad.text and 'value="nobody"' in bad.text
    taken = await admin.post("/team/invite", {"email": "agent@acme.test", "role": "agent"})
    assert taken.status_code == 422 and "is a member of this workspace already" in taken.text
    owner = await admin.post("/team/invite", {"email": "boss@acme.test", "role": "owner"})
    assert owner.status_code == 422 and 'id="e-role"' in owner.text
    assert "only an owner" in owner.text


async def test_change_role_and_remove(console: Any, tenant: Any, runtime: Runtime) -> None:
    admin = await console(Role.ADMIN)
    agent = await console(Role.AGENT)
    agent_id = tenant.member_ids[Role.AGENT]
    changed = await admin.post(f"/team/{agent_id}/role", {"role": "editor"})
    assert changed.status_code == 303
    assert "selected>Editor</option>" in (await admin.get("/team")).text
    removed = await admin.post(f"/team/{agent_id}/remove")
    assert removed.status_code == 303
    assert "agent@acme.test" not in (await admin.get("/team")).text
    assert await sessions.session_member(runtime.db, agent.token) is None  # signed out


async def test_nobody_changes_or_removes_themself_or_an_owner_as_admin(
    console: Any, tenant: Any
) -> None:
    admin = await console(Role.ADMIN)
    own = await admin.post(f"/team/{tenant.member_ids[Role.ADMIN]}/remove")
    assert own.status_code == 422 and "cannot remove yourself" in own.text
    owner_id = tenant.member_ids[Role.OWNER]
    demote = await admin.post(f"/team/{owner_id}/role", {"role": "agent"})
    assert demote.status_code == 422 and "only an owner" in demote.text
    remove = await admin.post(f"/team/{owner_id}/remove")
    assert remove.status_code == 422 and "only an owner" in remove.text


async def test_a_new_link_for_a_pending_invitation(console: Any, client: httpx.AsyncClient) -> None:
    admin = await console(Role.ADMIN)
    first = await invite(admin)
    page = await admin.get("/team")
    member_id = re.search(r'action="/team/(\d+)/invite"', page.text)
    assert member_id
    renewed = await admin.post(f"/team/{member_id.group(1)}/invite")
    match = LINK.search(renewed.text)
    assert renewed.status_code == 200 and match and match.group(2) != first
    assert (await client.get(f"/invite/{first}")).status_code == 404
    assert (await client.get(f"/invite/{match.group(2)}")).status_code == 200


@pytest.mark.parametrize("role", [Role.AGENT, Role.EDITOR])
async def test_below_admin_is_refused(console: Any, tenant: Any, role: Role) -> None:
    member = await console(role)
    assert (await member.get("/team")).status_code == 403
    refused = await member.post("/team/invite", {"email": "x@acme.test", "role": "agent"})
    assert refused.status_code == 403
    other = tenant.member_ids[Role.OWNER]
    assert (await member.post(f"/team/{other}/remove")).status_code == 403


async def test_another_workspaces_members_are_not_found(
    console: Any, make_tenant: Any, tenant: Any
) -> None:
    other = await make_tenant("other")
    owner = await console(Role.OWNER)
    theirs = other.member_ids[Role.AGENT]
    assert (await owner.post(f"/team/{theirs}/role", {"role": "editor"})).status_code == 404
    assert (await owner.post(f"/team/{theirs}/remove")).status_code == 404
    assert (await owner.post(f"/team/{theirs}/invite")).status_code == 404
    assert "agent@other.test" not in (await owner.get("/team")).text


async def test_posts_need_the_csrf_token(console: Any, tenant: Any) -> None:
    owner = await console(Role.OWNER)
    data = {"email": "x@acme.test", "role": "agent"}
    assert (await owner.post("/team/invite", data, csrf=False)).status_code == 403
    agent_id = tenant.member_ids[Role.AGENT]
    assert (await owner.post(f"/team/{agent_id}/remove", csrf=False)).status_code == 403
    assert "agent@acme.test" in (await owner.get("/team")).text
