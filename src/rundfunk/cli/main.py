"""``rundfunk``: serve, worker, migrate, and the admin verbs for workspaces, members,
tokens, channels and broadcasts. Each command is a thin call into a service verb."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import make_url

from rundfunk.cli import contacts as cli_contacts
from rundfunk.cli import tokens as cli_tokens
from rundfunk.cli.help import ReadableCommand
from rundfunk.config import Settings
from rundfunk.db.changes import RedisUnreachable, check_redis
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import MIGRATION_LOCK, Database
from rundfunk.services import bootstrap, broadcasts, channels
from rundfunk.services import workspaces as ws
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import ServiceError
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.limiter import LimiterUnavailable
from rundfunk.worker.ownership import SqliteOwnership, WorkerAlreadyRunning

T = TypeVar("T")

app = typer.Typer(
    help="Rundfunk: broadcast channels and private conversations on messengers.",
    no_args_is_help=True,
    # Click's plain help: it wraps whole words at any width, where rich's boxes cut them
    # ("…") and print <bool>/<list[str]> type names (tests/cli/test_cli_help.py).
    rich_markup_mode=None,
)
workspace_app = typer.Typer(help="Manage workspaces (one per business).", no_args_is_help=True)
member_app = typer.Typer(help="Manage staff logins of a workspace.", no_args_is_help=True)
channel_app = typer.Typer(help="Manage connected messenger channels.", no_args_is_help=True)
broadcast_app = typer.Typer(help="Send broadcasts.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(member_app, name="member")
app.add_typer(cli_tokens.app, name="tokens")
app.add_typer(cli_tokens.app, name="token", hidden=True)  # the older name, for scripts
app.add_typer(cli_contacts.app, name="contacts")
app.add_typer(channel_app, name="channel")
app.add_typer(broadcast_app, name="broadcast")

WorkspaceOpt = Annotated[
    str, typer.Option("--workspace", "-w", metavar="SLUG", help="Workspace slug.")
]


def _run(work: Callable[[Database], Awaitable[T]], *, create: bool = False) -> T:
    """Migrate, run one service call, and turn service errors into a clear message.

    Only ``create`` commands (serve, migrate, workspace create) may start a new SQLite
    database; the others refuse one that does not exist yet (``_missing_database``).
    """
    settings = Settings()
    if not create and (missing := _missing_database(settings)) is not None:
        typer.secho(f"error: {missing}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            async with db.exclusive(MIGRATION_LOCK):
                await upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ServiceError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _missing_database(settings: Settings) -> str | None:
    """Why this command would start a new, empty SQLite database, or ``None``.

    Run in another directory, the default ``./rundfunk-data`` is not the server's: the
    command would quietly create an empty database there and then report "no such
    workspace" (or worse, succeed in the wrong place).
    """
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database).resolve()
    if path.exists():
        return None
    where = (
        "RUNDFUNK_DATABASE_URL"
        if settings.database_url
        else f"the data dir {settings.data_dir} (RUNDFUNK_DATA_DIR, default ./rundfunk-data)"
    )
    return (
        f"no Rundfunk database at {path} (from {where}); this command would create a new, "
        "empty one. Run it in the directory where `rundfunk serve` runs, or point "
        "RUNDFUNK_DATA_DIR or RUNDFUNK_DATABASE_URL at the server's database; "
        "`rundfunk migrate` creates a new database on purpose"
    )


async def _actor(db: Database, slug: str) -> Actor:
    return Actor(workspace_id=await ws.workspace_id_by_slug(db, slug), role=Role.OWNER, label="cli")


@app.command(short_help="Start the web UI, the API and the worker in one process.")
def serve(
    host: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Bind address (RUNDFUNK_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Port (RUNDFUNK_PORT).")
    ] = None,
    worker: Annotated[
        bool, typer.Option(help="Run the dispatcher and scheduler in this process.")
    ] = True,
) -> None:
    """Start the web UI, the API and (by default) the worker in one process."""
    import uvicorn

    from rundfunk.logs import configure_logging
    from rundfunk.web.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings)
    _require_redis(settings)
    if worker:
        _refuse_second_sqlite_worker(settings)
    demo = _run(bootstrap.ensure_demo, create=True) if settings.demo else None
    typer.echo(f"Rundfunk is starting on {settings.public_url}")
    if demo is not None:
        typer.echo(
            "\nFirst start: a demo workspace with a sandbox channel was created.\n"
            f"  console:   {settings.public_url}  (sign in; try the phone simulator)\n"
            f"  login:     {demo.email}\n"
            f"  password:  {demo.password}\n"
            f"  API token: {demo.token}\n"
            f"  try it:    curl -X POST {settings.public_url}/sandbox/{demo.channel_id}/phones/"
            "4915100000001/messages -H 'content-type: application/json' "
            '-d \'{"text": "START"}\'\n'
            "These are shown only once; keep them.\n"
        )
    sys.stdout.flush()
    uvicorn.run(
        create_app(settings, run_worker=worker),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep configure_logging's format (JSON or text) for uvicorn too
        # Open live-update streams (Server-Sent Events) must not hold up a shutdown.
        timeout_graceful_shutdown=5,
        # uvicorn's 5 s equals httpx's idle expiry: a reused connection raced the close.
        timeout_keep_alive=settings.keepalive_seconds,
    )


def _require_redis(settings: Settings) -> None:
    """A clear message, not a traceback, when ``RUNDFUNK_REDIS_URL`` does not answer."""
    if not settings.redis_url:
        return
    try:
        asyncio.run(check_redis(settings.redis_url))
    except RedisUnreachable as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _refuse_second_sqlite_worker(settings: Settings) -> None:
    """A clear message before the web server starts (the worker's lock is the guard)."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return
    probe = SqliteOwnership(url)
    try:
        probe.acquire()
    except WorkerAlreadyRunning as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    probe.release()


@app.command(short_help="Run the dispatcher and scheduler alone (scaled mode).")
def worker() -> None:
    """Run the dispatcher and scheduler without the web server (scaled mode).

    Any number may run on PostgreSQL; on SQLite only one process may send. SIGTERM or
    SIGINT: in-flight sends finish, claimed but unsent work goes back to the queue,
    and the process exits 0.
    """
    from rundfunk.logs import configure_logging
    from rundfunk.metrics import start_metrics_server
    from rundfunk.worker.runtime import Runtime

    settings = Settings()
    configure_logging(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runtime = await Runtime.create(settings, run_worker=True)
        engine = "SQLite" if runtime.db.is_sqlite else "PostgreSQL"
        typer.echo(f"Rundfunk worker is running on {engine} (pid {os.getpid()})")
        sys.stdout.flush()
        try:
            await stop.wait()
            typer.echo("stopping: finishing in-flight sends, releasing unsent work")
            sys.stdout.flush()
        finally:
            await runtime.close()
        typer.echo(
            f"worker stopped: {runtime.dispatcher.sent} sent, "
            f"{runtime.dispatcher.released} released"
        )

    _require_redis(settings)
    metrics = start_metrics_server(settings)  # RUNDFUNK_METRICS_PORT, when set
    try:
        asyncio.run(main())
    except (WorkerAlreadyRunning, RedisUnreachable, LimiterUnavailable) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    finally:
        if metrics is not None:
            metrics.shutdown()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run at any time)."""
    _run(lambda db: asyncio.sleep(0), create=True)
    typer.echo("database is up to date")


@workspace_app.command("create", cls=ReadableCommand)
def workspace_create(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="Lower-case letters, digits, '-'.")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Display name.")] = None,
) -> None:
    """Create a workspace."""
    workspace_id = _run(lambda db: ws.create_workspace(db, slug=slug, name=name), create=True)
    typer.echo(f"workspace {slug} created (id {workspace_id})")


@member_app.command("create")
def member_create(
    workspace: WorkspaceOpt,
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Login e-mail.")],
    role: Annotated[
        Role, typer.Option(metavar="ROLE", help="owner, admin, editor or agent.")
    ] = Role.AGENT,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Display name.")] = None,
    password: Annotated[
        str,
        typer.Option(
            metavar="PASSWORD",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Login password (asked for when not given).",
        ),
    ] = "",
) -> None:
    """Create a staff member with a role and a password."""

    async def work(db: Database) -> int:
        workspace_id = await ws.workspace_id_by_slug(db, workspace)
        return await ws.create_member(
            db, workspace_id=workspace_id, email=email, role=role, name=name, password=password
        )

    typer.echo(f"member {email} created (id {_run(work)}, role {role.value})")


@channel_app.command("add")
def channel_add(
    workspace: WorkspaceOpt,
    name: Annotated[str, typer.Option(metavar="NAME", help="Channel name.")],
    kind: Annotated[
        str, typer.Option(metavar="KIND", help="Channel kind: sandbox or whatsapp.")
    ] = "sandbox",
    config: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="KEY=VALUE, repeatable. WhatsApp: phone_number_id, waba_id, access_token, "
            "app_secret, display_phone_number, throughput and more (docs/channels/whatsapp.md)."
        ),
    ] = None,
) -> None:
    """Connect a channel to a workspace."""
    values: dict[str, object] = {}
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--config")
        key = key.strip()
        values[key] = _number(value) if key in NUMERIC_CONFIG else value

    async def work(db: Database) -> dict[str, object]:
        return await channels.create_channel(
            db,
            actor=await _actor(db, workspace),
            kind=kind,
            name=name,
            config=values or None,
            box=SecretBox(Settings().resolved_secret_key),
        )

    created = _run(work)
    typer.echo(f"channel {created['name']} added (id {created['id']}, kind {created['kind']})")
    if created.get("webhook_path"):
        typer.echo(f"webhook URL: {Settings().public_url}{created['webhook_path']}")
        typer.echo(f"verify token: {created['verify_token']}")


NUMERIC_CONFIG = frozenset(
    {"throughput", "daily_recipient_cap", "pair_interval_seconds", "pair_burst", "burst"}
)


def _number(value: str) -> object:
    """``throughput=200`` as a number; what is not a number stays text (and is refused)."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


@broadcast_app.command("send")
def broadcast_send(
    workspace: WorkspaceOpt,
    channel: Annotated[int, typer.Option(metavar="ID", help="Channel id.")],
    text: Annotated[
        str,
        typer.Option(metavar="TEXT", help="Message text; {{ contact.name }} personalizes."),
    ],
    topic: Annotated[
        list[str] | None, typer.Option(metavar="KEY", help="Topic key (repeatable).")
    ] = None,
    media_url: Annotated[
        str | None, typer.Option(metavar="URL", help="Image or file URL.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(metavar="TIME", help="Send later: ISO 8601 with time zone.")
    ] = None,
) -> None:
    """Send a broadcast now, or schedule it with --at."""
    send_at = None
    if at is not None:
        try:
            send_at = datetime.fromisoformat(at)
        except ValueError:
            typer.secho(
                f"error: --at {at!r} is not an ISO 8601 time", fg=typer.colors.RED, err=True
            )
            raise typer.Exit(2) from None

    async def work(db: Database) -> dict[str, object]:
        actor = await _actor(db, workspace)
        created = await broadcasts.create_broadcast(
            db,
            actor=actor,
            channel_id=channel,
            text=text,
            topic_keys=topic or [],
            media_url=media_url,
            send_at=send_at,
        )
        if send_at is None:
            created = await broadcasts.send_broadcast(
                db, actor=actor, broadcast_id=int(created["id"])
            )
        return created

    result = _run(work)
    stats = result["stats"]
    assert isinstance(stats, dict)
    typer.echo(f"broadcast {result['id']} is {result['status']} ({stats['total']} recipients)")
