"""Scale-out: do two ``rundfunk worker`` processes send twice as fast as one (PostgreSQL)?

The fake Graph API answers every send after a fixed latency, so one worker is held
by its own concurrency (64 sends in flight), not by the CPU: 64 / latency messages
per second at most. The same audience is sent once with one worker and once with
two, on one PostgreSQL database (a new broadcast each time, so every row is claimed
once). Two workers claiming side by side (``FOR UPDATE SKIP LOCKED``) should come
close to twice the rate; the ratio is ``scaleout_2_vs_1``.

    .venv/bin/python benchmarks/scaleout.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from _common import fake_server, fresh_database, seed_contacts, whatsapp_workspace
from _workers import describe, send_with_workers

LATENCY_S = 0.2  # 64 in flight / 0.2 s: at most 320 msg/s per worker
FULL_RECIPIENTS = 10_000
QUICK_RECIPIENTS = 4_000


async def measure_async(quick: bool) -> dict[str, Any]:
    recipients = QUICK_RECIPIENTS if quick else FULL_RECIPIENTS
    rates: dict[int, float] = {}
    async with fresh_database("postgres") as url, fake_server(LATENCY_S) as fake:
        setup = await whatsapp_workspace(url, fake.url)
        await seed_contacts(setup, 0, recipients)
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix="rundfunk-scaleout-") as tmp:
                result = await send_with_workers(setup, fake, recipients, workers, Path(tmp))
            print(f"  scale-out: {describe(result)}", flush=True)
            rates[workers] = result.msgs_per_s
    return {
        "scaleout_latency_s": LATENCY_S,
        "scaleout_recipients": recipients,
        "scaleout_msgs_per_s_1": rates[1],
        "scaleout_msgs_per_s_2": rates[2],
        "scaleout_2_vs_1": round(rates[2] / rates[1], 3),
    }


def measure(quick: bool) -> dict[str, Any]:
    return asyncio.run(measure_async(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RECIPIENTS:,} recipients")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))
