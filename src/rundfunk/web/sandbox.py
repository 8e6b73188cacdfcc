"""The sandbox channel's simulated phones: write to the business, read what arrived.

Mounted only when ``settings.sandbox_enabled``. No authentication: the phones stand
in for people on a messenger, who have no token either (embedded mode, trying out).
So that a server bound to a public address does not let anyone read what a
workspace's sandbox phones received, they answer only clients on this machine — a
loopback peer that no proxy forwarded — unless ``RUNDFUNK_SANDBOX_PUBLIC`` is true.
The console's phone simulator does not use these routes (it has its own, behind the
sign-in), so it works from anywhere.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from rundfunk.services import sandbox as service
from rundfunk.web.api.fields import MAX_TEXT, REQUEST, MediaUrl, Name, PathId
from rundfunk.web.deps import RuntimeDep
from rundfunk.web.errors import ERROR_RESPONSES, PUBLIC_ERROR_RESPONSES

LOCAL_ONLY = (
    "the sandbox phones answer only clients on this machine; set "
    "RUNDFUNK_SANDBOX_PUBLIC=true to open them to every client (anyone could then read "
    "what the sandbox phones received), or use the console's phone simulator"
)


def from_this_machine(request: Request) -> bool:
    """A loopback peer that no proxy forwarded (a proxy on this host is not enough)."""
    headers = request.headers
    if "x-forwarded-for" in headers or "forwarded" in headers:
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def _local_unless_public(request: Request) -> None:
    if not request.app.state.settings.sandbox_public and not from_this_machine(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, LOCAL_ONLY)


router = APIRouter(
    prefix="/sandbox",
    tags=["sandbox"],
    dependencies=[Depends(_local_unless_public)],
    responses={
        **PUBLIC_ERROR_RESPONSES,
        403: {
            **ERROR_RESPONSES[403],
            "description": "Not from this machine, and RUNDFUNK_SANDBOX_PUBLIC is off.",
        },
    },
)

Address = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9+_-]+$",
        description="The simulated phone: 1-64 letters, digits, '+', '-' or '_'.",
        examples=["4915100000001"],
    ),
]


class PhoneMessageCreate(BaseModel):
    model_config = REQUEST

    text: str | None = Field(
        default=None, max_length=MAX_TEXT, examples=["START"], description="What the person writes."
    )
    media_url: MediaUrl | None = None
    name: Name | None = Field(default=None, description="The person's profile name.")


class PhoneWriteResult(BaseModel):
    message_id: int | None
    action: str = Field(description="opt_in | opt_out | help | conversation | ignore")
    duplicate: bool
    contact_id: int
    conversation_id: int | None = None


class PhoneMessage(BaseModel):
    id: int
    text: str | None = None
    media_url: str | None = None
    received_at: datetime
    status: str = Field(description="sent | delivered | read")


@router.post(
    "/{channel_id}/phones/{address}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PhoneWriteResult,
)
async def phone_writes(
    channel_id: PathId, address: Address, body: PhoneMessageCreate, runtime: RuntimeDep
) -> Any:
    """A simulated person writes to the business (START, STOP, HELP, or anything)."""
    outcome = await service.phone_writes(
        runtime.db,
        channel_id=channel_id,
        address=address,
        text=body.text,
        media_url=body.media_url,
        name=body.name,
    )
    runtime.wake()
    return {
        "message_id": outcome.message_id,
        "action": str(outcome.action),
        "duplicate": outcome.duplicate,
        "contact_id": outcome.contact_id,
        "conversation_id": outcome.conversation_id,
    }


@router.get("/{channel_id}/phones/{address}/messages", response_model=list[PhoneMessage])
async def phone_inbox(channel_id: PathId, address: Address, runtime: RuntimeDep) -> Any:
    """Everything this phone received from the business, oldest first."""
    return await service.phone_inbox(runtime.db, channel_id=channel_id, address=address)
