"""Canned responses (create, list, update, delete, per workspace) and the inbox's
console reads: unread until seen, pending, and the mine / unassigned views."""

from __future__ import annotations

import pytest

from rundfunk.services import canned, inbox, inbox_views, workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Invalid, NotFound
from service_world import World


async def _stranger(world: World) -> Actor:
    workspace_id = await workspaces.create_workspace(world.db, slug="elsewhere")
    return Actor(workspace_id=workspace_id, role=Role.OWNER, label="test:other")


async def test_agents_create_list_update_and_delete_canned_responses(world: World) -> None:
    agent = world.actor(Role.AGENT)
    first = await canned.create_canned(
        world.db, actor=agent, short_code=" /Opening-Hours ", text=" Mo-Fr 9-17 "
    )
    assert (first["short_code"], first["text"]) == ("opening-hours", "Mo-Fr 9-17")
    await canned.create_canned(world.db, actor=agent, short_code="address", text="Hauptstr. 1")
    listed = await canned.list_canned(world.db, actor=agent)
    assert [c["short_code"] for c in listed] == ["address", "opening-hours"]

    changed = await canned.update_canned(
        world.db, actor=agent, canned_id=first["id"], short_code="hours", text="Mo-Sa 9-18"
    )
    assert (changed["short_code"], changed["text"]) == ("hours", "Mo-Sa 9-18")
    # Keeping its own code is no conflict; taking another one's is.
    await canned.update_canned(
        world.db, actor=agent, canned_id=first["id"], short_code="hours", text="same code"
    )
    with pytest.raises(Conflict, match="taken already") as taken:
        await canned.update_canned(
            world.db, actor=agent, canned_id=first["id"], short_code="address", text="x"
        )
    assert taken.value.field == "short_code"

    await canned.delete_canned(world.db, actor=agent, canned_id=first["id"])
    assert [c["short_code"] for c in await canned.list_canned(world.db, actor=agent)] == ["address"]
    with pytest.raises(NotFound):
        await canned.get_canned(world.db, actor=agent, canned_id=first["id"])


@pytest.mark.parametrize(
    ("code", "text", "field", "message"),
    [
        ("", "x", "short_code", "must not be empty"),
        ("/", "x", "short_code", "must not be empty"),
        ("two words", "x", "short_code", "letters a-z"),
        ("ümlaut", "x", "short_code", "letters a-z"),
        ("x" * 65, "x", "short_code", "longer than 64"),
        ("ok", "   ", "text", "must not be empty"),
        ("ok", "x" * 4097, "text", "longer than 4096"),
    ],
)
async def test_invalid_canned_responses_are_refused_at_their_field(
    world: World, code: str, text: str, field: str, message: str
) -> None:
    with pytest.raises(Invalid, match=message) as refused:
        await canned.create_canned(world.db, actor=world.owner, short_code=code, text=text)
    assert refused.value.field == field
    assert await canned.list_canned(world.db, actor=world.owner) == []


async def test_canned_responses_stay_in_their_workspace(world: World) -> None:
    mine = await canned.create_canned(world.db, actor=world.owner, short_code="hi", text="Hi!")
    stranger = await _stranger(world)
    assert await canned.list_canned(world.db, actor=stranger) == []
    for attempt in (
        canned.get_canned(world.db, actor=stranger, canned_id=mine["id"]),
        canned.update_canned(
            world.db, actor=stranger, canned_id=mine["id"], short_code="hi", text="x"
        ),
        canned.delete_canned(world.db, actor=stranger, canned_id=mine["id"]),
    ):
        with pytest.raises(NotFound):
            await attempt
    # The same code is free in another workspace.
    await canned.create_canned(world.db, actor=stranger, short_code="hi", text="Hallo!")
    assert (await canned.get_canned(world.db, actor=world.owner, canned_id=mine["id"]))[
        "text"
    ] == "Hi!"


async def test_a_conversation_is_unread_until_marked_seen(world: World) -> None:
    agent = world.actor(Role.AGENT)
    outcome = await world.write("+4901", "Is anyone there?")
    assert outcome.conversation_id is not None
    [row] = await inbox_views.list_view(world.db, actor=agent, view="open")
    assert row["unread"] is True and row["preview"] == "Is anyone there?"

    await inbox.mark_seen(world.db, actor=agent, conversation_id=outcome.conversation_id)
    [row] = await inbox_views.list_view(world.db, actor=agent, view="open")
    assert row["unread"] is False

    await world.write("+4901", "Hello?")
    [row] = await inbox_views.list_view(world.db, actor=agent, view="open")
    assert row["unread"] is True and row["preview"] == "Hello?"
    with pytest.raises(NotFound):
        await inbox.mark_seen(
            world.db, actor=await _stranger(world), conversation_id=outcome.conversation_id
        )


async def test_pending_waits_for_the_contact_and_the_views_filter(world: World) -> None:
    member_id = await workspaces.create_member(
        world.db, workspace_id=world.workspace_id, email="a@x.test", role=Role.AGENT
    )
    agent = Actor(world.workspace_id, Role.AGENT, f"member:{member_id}", member_id=member_id)
    first = (await world.write("+4902", "first")).conversation_id
    second = (await world.write("+4903", "second")).conversation_id
    assert first is not None and second is not None

    await inbox.assign(world.db, actor=agent, conversation_id=first, member_id=member_id)
    assert await inbox_views.view_counts(world.db, actor=agent) == {
        "open": 2, "pending": 0, "resolved": 0, "mine": 1, "unassigned": 1,
    }  # fmt: skip
    [mine] = await inbox_views.list_view(world.db, actor=agent, view="mine")
    assert mine["id"] == first and mine["assignee_id"] == member_id

    pending = await inbox.set_pending(world.db, actor=agent, conversation_id=first)
    assert pending["status"] == "pending"
    assert [c["id"] for c in await inbox_views.list_view(world.db, actor=agent)] == [second]
    await inbox.resolve(world.db, actor=agent, conversation_id=second)
    counts = await inbox_views.view_counts(world.db, actor=agent)
    assert counts == {"open": 0, "pending": 1, "resolved": 1, "mine": 1, "unassigned": 0}

    await world.write("+4902", "any news?")  # the contact answers: open again
    [reopened] = await inbox_views.list_view(world.db, actor=agent, view="open")
    assert reopened["id"] == first
    with pytest.raises(Invalid, match="status must be one of"):
        await inbox.set_status(world.db, actor=agent, conversation_id=first, status="snoozed")
    with pytest.raises(Invalid, match="view must be one of"):
        await inbox_views.list_view(world.db, actor=agent, view="everything")
