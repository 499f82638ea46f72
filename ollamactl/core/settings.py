"""The `[settings]` of a registry and every number a user can give: defaults, bounds and the one check.

Flags that override a setting (`--timeout`, `--connect-timeout`, ...) and the other numbers a
command takes (`--weight`, `-n`, `--per-instance`, ...) are checked by the same function, so a value
is accepted or refused in the same words wherever it comes from: finite, in range, whole where a
count is meant. A refused flag is a usage error (exit 2) that quotes the value.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ollamactl.core.errors import UsageError
from ollamactl.core.selection import STRATEGIES

DEFAULTS: dict[str, Any] = {
    "health_ttl": 300.0,  # seconds a healthy probe result is trusted
    "timeout": 5.0,  # seconds one health probe may take
    "strategy": "round-robin",
    "concurrency": 256,  # health probes at once
    "connect_timeout": 3.0,  # seconds to connect (run, embed)
    "first_byte_timeout": 600.0,  # seconds until a model answers at all (a cold load takes minutes)
    "wait": 60.0,  # seconds exec/run/embed wait for a lease when every instance is busy
    "store": "file",  # where the state lives: "file" (the state dir) or redis://host:6379/0
}
STORE_SCHEMES = ("redis://", "rediss://", "unix://")

DAY = 86400.0


class Bound(NamedTuple):
    """A number's rule: a whole number from `low` to `high`, or a measure in `unit` above `low` and
    at most `high`."""

    whole: bool
    low: float
    high: float
    unit: str = "seconds"


_SECONDS = Bound(False, 0.0, DAY)
NUMBERS: dict[str, Bound] = {
    "health_ttl": _SECONDS,
    "timeout": _SECONDS,
    "connect_timeout": _SECONDS,
    "first_byte_timeout": _SECONDS,
    "interval": _SECONDS,
    "wait": _SECONDS,  # exec/run/embed: seconds to wait for a lease (0 is allowed: give up at once)
    "concurrency": Bound(True, 1, 4096),  # health probes at once
    "weight": Bound(True, 1, 1000),  # smooth weighted round-robin sums weights: small integers
    "count": Bound(True, 1, 10_000),  # picks printed by one `pick -n`
    "tries": Bound(True, 1, 100),  # instances one `run` tries
    "batch_size": Bound(True, 1, 10_000),  # texts per embedding request
    "per_instance": Bound(True, 1, 64),  # embedding requests in flight per instance
    "pull_concurrency": Bound(True, 1, 64),  # model downloads at once
    "sim_instances": Bound(True, 1, 1000),  # simulated servers one `simulate` starts
    "pull_speed": Bound(False, 0.0, 1e6, "MB/s"),  # a simulated download's speed
}


def number_problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be the number `key` (a key of NUMBERS), in words, or None."""
    bound = NUMBERS[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if bound.whole:
        whole = number and (isinstance(value, int) or (math.isfinite(value) and value.is_integer()))
        if whole and bound.low <= value <= bound.high:
            return None
        return f"must be a whole number from {bound.low:g} to {bound.high:g}, got {value!r}"
    if number and math.isfinite(value) and bound.low < value <= bound.high:
        return None
    return f"must be a number of {bound.unit} above {bound.low:g} and at most {bound.high:g}, got {value!r}"


def checked(key: str, value: Any, flag: str | None = None) -> Any:
    """`value` if it is a valid `key`, else a UsageError (exit 2) naming `flag` (or the key) and the value."""
    problem = number_problem(key, value)
    if problem is not None:
        raise UsageError(f"{flag or key} {problem}", "give a value in that range")
    return value


def problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be setting `key`, in words, or None. Unknown keys are the user's own."""
    if key == "strategy":
        return None if value in STRATEGIES else f"must be one of {', '.join(STRATEGIES)}, got {value!r}"
    if key not in DEFAULTS:
        return None
    if key == "store":
        return store_problem(value)
    if key == "wait" and value == 0 and not isinstance(value, bool):
        return None  # give up at once
    return number_problem(key, value)


def store_problem(value: object) -> str | None:
    """Why `value` cannot name the state store, or None ("file", or a redis URL)."""
    if value == "file" or (isinstance(value, str) and value.startswith(STORE_SCHEMES)):
        return None
    return f"must be \"file\" or a redis URL such as redis://host:6379/0, got {value!r}"
