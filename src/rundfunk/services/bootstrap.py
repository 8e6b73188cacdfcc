"""First start of the embedded mode: a demo workspace, a sandbox channel, an owner."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from rundfunk.db.session import Database
from rundfunk.db.tables import workspaces
from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Role, system_actor
from rundfunk.services.channels import create_channel

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.rundfunk.local"


@dataclass(frozen=True)
class DemoLogin:
    workspace: str
    email: str
    password: str
    token: str
    channel_id: int


async def ensure_demo(db: Database) -> DemoLogin | None:
    """Create the demo on an empty database; None when any workspace exists already."""
    async with db.read() as conn:
        if await conn.scalar(select(func.count()).select_from(workspaces)):
            return None
    workspace_id = await ws.create_workspace(db, slug=DEMO_SLUG, name="Rundfunk Demo")
    password = secrets.token_urlsafe(12)
    member_id = await ws.create_member(
        db,
        workspace_id=workspace_id,
        email=DEMO_EMAIL,
        role=Role.OWNER,
        name="Owner",
        password=password,
    )
    channel = await create_channel(
        db, actor=system_actor(workspace_id), kind="sandbox", name="Sandbox"
    )
    token = await ws.create_token(
        db, workspace_id=workspace_id, role=Role.OWNER, name="first start", member_id=member_id
    )
    return DemoLogin(DEMO_SLUG, DEMO_EMAIL, password, token, int(channel["id"]))
