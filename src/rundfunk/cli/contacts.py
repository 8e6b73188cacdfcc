"""``rundfunk contacts block|unblock``: stop a person's messages reaching the inbox.

A blocked contact gets no broadcasts and no replies; what they write is stored on the
contact and counted, never in the inbox (``services.blocking``). Audited as "cli".
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from rundfunk.cli.help import ReadableCommand
from rundfunk.db.session import Database
from rundfunk.db.tables import contacts
from rundfunk.services import blocking
from rundfunk.services.actors import Actor
from rundfunk.services.errors import Invalid, NotFound

app = typer.Typer(help="Manage contacts: block and unblock.", no_args_is_help=True)

WorkspaceOpt = Annotated[
    str, typer.Option("--workspace", "-w", metavar="SLUG", help="Workspace slug.")
]
ContactArg = Annotated[
    str,
    typer.Argument(
        metavar="CONTACT",
        help="The contact's id, or their phone number / address on the channel.",
    ),
]
ChannelOpt = Annotated[
    int | None,
    typer.Option(metavar="ID", help="The channel, when an address is on several."),
]


async def _contact_id(db: Database, actor: Actor, contact: str, channel: int | None) -> int:
    """An id as given, or the one contact with this address (on ``channel``)."""
    value = contact.strip()
    query = select(contacts.c.id, contacts.c.channel_id).where(
        contacts.c.workspace_id == actor.workspace_id
    )
    if value.isdigit() and len(value) < 10:  # longer digits: a phone number
        by_id = query.where(contacts.c.id == int(value))
        async with db.read() as conn:
            if (await conn.execute(by_id)).first() is not None:
                return int(value)
    query = query.where(contacts.c.address == value)
    if channel is not None:
        query = query.where(contacts.c.channel_id == channel)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    if not rows:
        raise NotFound(f"no contact {value!r} in this workspace")
    if len(rows) > 1:
        channels = ", ".join(str(r.channel_id) for r in rows)
        raise Invalid(f"{value!r} is a contact on the channels {channels}: add --channel")
    return int(rows[0].id)


def _change(workspace: str, contact: str, channel: int | None, *, block: bool) -> None:
    from rundfunk.cli.main import _actor, _run

    async def work(db: Database) -> blocking.BlockState:
        actor = await _actor(db, workspace)
        contact_id = await _contact_id(db, actor, contact, channel)
        verb = blocking.block_contact if block else blocking.unblock_contact
        return await verb(db, actor=actor, contact_id=contact_id)

    state = _run(work)
    if state.blocked:
        typer.echo(
            f"contact {state.contact_id} is blocked "
            f"({state.blocked_messages} messages while blocked so far)"
        )
    else:
        typer.echo(f"contact {state.contact_id} is unblocked")


@app.command("block", cls=ReadableCommand)
def block(workspace: WorkspaceOpt, contact: ContactArg, channel: ChannelOpt = None) -> None:
    """Block a contact: no broadcasts, no replies, nothing in the inbox."""
    _change(workspace, contact, channel, block=True)


@app.command("unblock", cls=ReadableCommand)
def unblock(workspace: WorkspaceOpt, contact: ContactArg, channel: ChannelOpt = None) -> None:
    """Lift a contact's block; their subscription stays as it was."""
    _change(workspace, contact, channel, block=False)
