"""Who is acting: the workspace, the role, and a label for the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rundfunk.services.errors import Forbidden


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    AGENT = "agent"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.AGENT: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class Actor:
    workspace_id: int
    role: Role
    label: str  # "member:3", "token:7", "cli", "system", "contact"
    member_id: int | None = None

    def require(self, role: Role) -> None:
        """Raise unless this actor's role is ``role`` or higher."""
        if self.role.rank < role.rank:
            raise Forbidden(
                f"this needs the role {role.value} or higher; you are {self.role.value}"
            )


def system_actor(workspace_id: int) -> Actor:
    return Actor(workspace_id=workspace_id, role=Role.OWNER, label="system")
