"""Schemathesis hooks for the fuzz test (loaded by ``schemathesis run`` through
``SCHEMATHESIS_HOOKS=fuzz_hooks``; not a test module).

- Every answer is counted by status; the counts are written as JSON to
  ``$RUNDFUNK_FUZZ_COUNTS`` when the run ends, so the test can report how many
  requests it sent and how many were 5xx.
- The run's own token is never revoked or rotated (``$RUNDFUNK_FUZZ_KEEP_TOKEN``).
- No case may make the server talk to the outside world: a channel of a real platform
  (WhatsApp, Telegram) is never created, so nothing is ever sent or fetched beyond
  this machine, whatever the fuzzer comes up with.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from typing import Any

import schemathesis

_STATUSES: Counter[str] = Counter()
_REAL_PLATFORMS = {"whatsapp", "telegram"}


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    # The token the fuzzer authenticates with is never revoked or rotated by it (every
    # other token is fair game), or the rest of the run would test only the 401.
    keep = os.environ.get("RUNDFUNK_FUZZ_KEEP_TOKEN")
    token_id = (case.path_parameters or {}).get("token_id")
    if keep and token_id is not None and str(token_id).strip() == keep:
        return False
    body = case.body
    if isinstance(body, dict) and case.operation.path.rstrip("/").endswith("/channels"):
        kind = body.get("kind")
        if isinstance(kind, str) and kind.strip().lower() in _REAL_PLATFORMS:
            return False
    return True


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case, response: Any
) -> None:
    _STATUSES[str(response.status_code)] += 1
    if response.status_code >= 500:
        _STATUSES[f"5xx {case.method} {case.operation.path}"] += 1


@atexit.register
def _write_counts() -> None:
    path = os.environ.get("RUNDFUNK_FUZZ_COUNTS")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(dict(_STATUSES), out, indent=1, sort_keys=True)
