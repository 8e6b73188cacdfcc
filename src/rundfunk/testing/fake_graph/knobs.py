"""The fake's knobs by name, type-checked, as set through ``POST /_fake/config``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import JSON
from .faults import Injection

if TYPE_CHECKING:
    from .server import FakeGraph


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _as_opt_float(value: Any) -> float | None:
    return None if value is None else _as_float(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _as_opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or null, got {value!r}")
    return value


def _as_str_set(value: Any) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of wa_ids")
    return set(value)


KNOBS: dict[str, Callable[[Any], Any]] = {
    "latency": _as_float,
    "enforce_window": _as_bool,
    "network_error_share": _as_float,
    "network_error_accepts": _as_bool,
    "throughput_limit": _as_opt_float,
    "pair_limit_seconds": _as_opt_float,
    "undeliverable": _as_str_set,
    "read_share": _as_float,
    "status_delay": _as_float,
    "duplicate_share": _as_float,
    "shuffle": _as_bool,
    "skip_delivered_share": _as_float,
    "late_delivered_after_failed": _as_bool,
    "multi_change_share": _as_float,
    "webhook_url": _as_opt_str,
    "webhook_batch_seconds": _as_float,
    "webhook_batch_max": _as_int,
    "webhook_retries": _as_int,
    "webhook_concurrency": _as_int,
}


def set_knobs(graph: FakeGraph, knobs: dict[str, Any]) -> None:
    """Set ``graph``'s knobs by name, type-checked; ``injections`` as a list of rules."""
    for name, value in knobs.items():
        if name == "injections":
            if not isinstance(value, list):
                raise ValueError("injections must be a list")
            graph.injections = [
                Injection(
                    _as_int(rule["code"]),
                    _as_float(rule["share"]),
                    _as_int(rule.get("http_status", 400)),
                    _as_opt_str(rule.get("message")),
                )
                for rule in value
            ]
        elif name in KNOBS:
            setattr(graph, name, KNOBS[name](value))
        else:
            raise ValueError(f"unknown knob {name!r}")


def knob_values(graph: FakeGraph) -> JSON:
    """``graph``'s knobs as JSON, the answer of ``/_fake/config``."""
    knobs = {name: getattr(graph, name) for name in KNOBS}
    knobs["undeliverable"] = sorted(graph.undeliverable)
    knobs["injections"] = [vars(rule) for rule in graph.injections]
    return knobs
