"""The crash drill of the scaled mode: SIGKILLs during a 40,000-recipient broadcast.

``rundfunk.testing.drill`` runs ``serve --no-worker`` and three ``rundfunk worker``
processes on a fresh PostgreSQL database against the fake WhatsApp Cloud API (its
status webhooks on), seeds 40,000 opted-in subscribers and sends one template
broadcast; twelve times while it is sending, a random worker gets SIGKILL and a new
one takes its place. Every subscriber must end with exactly one copy at the fake: a
send the crash left unknown is settled by its status callback
(``biz_opaque_callback_data``), and only a row no callback claimed within the settle
time is sent again.

40,000, not the issue's 100,000: on this 2-core machine (shared with other work, load
6-10) the 100,000-recipient drill took 233 s (broadcast 224 s), over the CI budget of
3 minutes; 40,000 took 86-92 s. ``benchmarks/kills.py`` runs the 100,000. The seed
is printed; ``DRILL_SEED=<n>`` replays a run's plan of kills.
"""

from __future__ import annotations

import os

import pytest

from rundfunk.testing.drill import drill

pytestmark = pytest.mark.e2e

RECIPIENTS = 40_000
KILLS = 12


def test_sigkilled_workers_leave_every_subscriber_exactly_one_copy(postgres_url: str) -> None:
    seed = int(os.environ.get("DRILL_SEED", "0")) or None
    result = drill(RECIPIENTS, kills=KILLS, seed=seed, database_url=postgres_url)
    print(f"\n[e2e kills] {result.summary()}")
    for kill in result.kill_log:
        print(f"[e2e kills]   {kill}")
    context = f"{result.summary()}; logs in {result.logs}"
    assert result.kills >= 10, context
    assert result.kills_while_sending, (result.kill_log, context)
    assert result.duplicates == 0, context
    assert result.missing == 0, context
    # The kills did hit work in flight, and both ways out of "unknown" were taken: some
    # rows were settled by their callback, others (never sent) were sent again.
    assert result.orphaned > 0 and result.settled_by_callback > 0 and result.resent > 0, context
    assert result.settled_by_callback + result.resent == result.orphaned, context
