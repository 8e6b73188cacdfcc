"""Process mode: ``python -m rundfunk.testing.fake_graph`` serves until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from .server import FakeGraph

DESCRIPTION = "A fake WhatsApp Cloud API (Graph API) server on loopback, for tests and benchmarks."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rundfunk.testing.fake_graph", description=DESCRIPTION
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--access-token", default="tok")
    parser.add_argument("--app-secret", default="secret")
    parser.add_argument("--phone-number-id", default="1001")
    parser.add_argument("--waba-id", default="2002")
    parser.add_argument("--display-phone-number", default="+49 151 23456789")
    parser.add_argument("--api-version", default="v21.0")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    graph = FakeGraph(
        access_token=args.access_token,
        app_secret=args.app_secret,
        phone_number_id=args.phone_number_id,
        waba_id=args.waba_id,
        display_phone_number=args.display_phone_number,
        api_version=args.api_version,
        seed=args.seed,
    )
    graph.webhook_url = args.webhook_url
    graph.latency = args.latency
    url = await graph.start(host=args.host, port=args.port)
    print(f"FAKE_GRAPH_URL={url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await graph.close()


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``), print ``FAKE_GRAPH_URL=...`` and serve."""
    asyncio.run(_serve(_parser().parse_args(argv)))
