"""The crash drill as a figure: duplicates and losses after SIGKILLs (target 0 and 0).

Three ``rundfunk worker`` processes and ``rundfunk serve --no-worker`` on a fresh
PostgreSQL database send one WhatsApp template broadcast to the fake Graph API;
twelve times while it is sending a random worker is killed with SIGKILL and
replaced (``rundfunk.testing.drill``). The figures: recipients with more than one
copy, recipients with none, the kills, how long the drill took, and how the rows the
kills left in flight ended (settled by their status callback, or sent again after
the settle time). Full: 100,000 recipients; quick: 20,000, still 12 kills.

    .venv/bin/python benchmarks/kills.py [--quick] [--seed N] [--recipients N]

``--seed`` replays a drill's plan of kills (the seed is printed with every run).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rundfunk.testing.drill import drill

FULL_RECIPIENTS = 100_000
QUICK_RECIPIENTS = 20_000
KILLS = 12


def measure(quick: bool, seed: int | None = None, recipients: int | None = None) -> dict[str, Any]:
    size = recipients or (QUICK_RECIPIENTS if quick else FULL_RECIPIENTS)
    result = drill(size, kills=KILLS, seed=seed)
    print(f"  {result.summary()}", flush=True)
    return {
        "duplicates_after_kills": result.duplicates,
        "missing_after_kills": result.missing,
        "kills": result.kills,
        "kills_while_sending": result.kills_while_sending,
        "drill_seconds": round(result.seconds, 1),
        "drill_broadcast_seconds": round(result.broadcast_seconds, 1),
        "drill_recipients": result.recipients,
        "drill_seed": result.seed,
        "drill_orphaned": result.orphaned,
        "drill_settled_by_callback": result.settled_by_callback,
        "drill_resent": result.resent,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 recipients, 12 kills")
    parser.add_argument("--seed", type=int, default=None, help="replay this plan of kills")
    parser.add_argument("--recipients", type=int, default=None, help="another size")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick, args.seed, args.recipients), indent=2))
