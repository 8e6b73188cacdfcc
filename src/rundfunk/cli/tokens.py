"""``rundfunk tokens list|create|revoke|rotate``: the API tokens of a workspace.

The CLI acts as an owner of the workspace (like every admin verb of the CLI); a new
or rotated token's secret is printed once, alone on the last line, for scripts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from rundfunk.cli.help import ReadableCommand
from rundfunk.db.session import Database
from rundfunk.services import api_tokens
from rundfunk.services.actors import Actor, Role

T = TypeVar("T")

app = typer.Typer(
    help="Manage API tokens: list, create, revoke, rotate.", no_args_is_help=True
)

WorkspaceOpt = Annotated[
    str, typer.Option("--workspace", "-w", metavar="SLUG", help="Workspace slug.")
]
TokenId = Annotated[int, typer.Argument(metavar="TOKEN_ID", help="The token's id (see list).")]


def _run(work: Callable[[Actor, Database], Awaitable[T]], workspace: str) -> T:
    # Imported here: main imports this module to register it.
    from rundfunk.cli.main import _actor, _run

    async def call(db: Database) -> T:
        return await work(await _actor(db, workspace), db)

    return _run(call)


def _when(value: object) -> str:
    return "never" if value is None else str(value)[:16].replace("T", " ")


@app.command("list")
def list_tokens(
    workspace: WorkspaceOpt,
    revoked: Annotated[
        bool, typer.Option("--revoked", help="Also list revoked tokens.")
    ] = False,
) -> None:
    """List the tokens: id, name, role, prefix, created, last used."""
    found = _run(
        lambda actor, db: api_tokens.list_tokens(db, actor=actor, include_revoked=revoked),
        workspace,
    )
    if not found:
        typer.echo("no API tokens")
        return
    typer.echo(f"{'ID':>5}  {'NAME':<20} {'ROLE':<7} {'PREFIX':<11} {'CREATED':<16}  LAST USED")
    for t in found:
        state = "" if t.active else f"  (revoked {_when(t.revoked_at)})"
        typer.echo(
            f"{t.id:>5}  {t.name[:20]:<20} {t.role.value:<7} {t.prefix:<11} "
            f"{_when(t.created_at):<16}  {_when(t.last_used_at)}{state}"
        )


@app.command("create")
def create_token(
    workspace: WorkspaceOpt,
    role: Annotated[
        Role, typer.Option(metavar="ROLE", help="owner, admin, editor or agent.")
    ] = Role.EDITOR,
    name: Annotated[str, typer.Option(metavar="NAME", help="What the token is for.")] = "api",
) -> None:
    """Create a token; it is printed once, alone on the last line."""
    made = _run(
        lambda actor, db: api_tokens.create_token(db, actor=actor, name=name, role=role),
        workspace,
    )
    typer.echo(
        f"API token {made.token.id} for {workspace} with role {role.value} (shown only once):"
    )
    typer.echo(made.secret)


@app.command("revoke", cls=ReadableCommand)
def revoke_token(workspace: WorkspaceOpt, token_id: TokenId) -> None:
    """Revoke a token: refused at once, on every server."""
    gone = _run(
        lambda actor, db: api_tokens.revoke_token(db, actor=actor, token_id=token_id),
        workspace,
    )
    typer.echo(f"token {gone.id} ({gone.name}, {gone.prefix}) revoked")


@app.command("rotate", cls=ReadableCommand)
def rotate_token(workspace: WorkspaceOpt, token_id: TokenId) -> None:
    """Give a token a new secret; the old one is revoked at once.

    The new secret is printed once, alone on the last line."""
    made = _run(
        lambda actor, db: api_tokens.rotate_token(db, actor=actor, token_id=token_id),
        workspace,
    )
    typer.echo(f"token {made.replaces} revoked; its successor {made.token.id} (shown only once):")
    typer.echo(made.secret)
