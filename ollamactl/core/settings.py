"""The `[settings]` of a registry and every number a user can give: defaults, bounds and the one check.

Arguments that override a setting (`timeout`, `connect_timeout`, ...) and the other numbers a
method takes (`weight`, `count`, `per_instance`, ...) are checked by the same function (exported
as `checked_number`), so a value is accepted or refused in the same words wherever it comes from:
finite, in range, whole where a count is meant. A refused number is an InvalidValue (exit 2) that
names the parameter (the CLI: its flag) and quotes the value.
"""

from __future__ import annotations

import math

from ollamactl.core.errors import InvalidValue
from ollamactl.core.routing.selection import STRATEGIES

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any
    from typing import NamedTuple as Record
else:
    from ollamactl.core.records import Record

DEFAULTS: dict[str, Any] = {
    # Freshness (see health.cache): a result younger than its ttl is used as it is; one up to
    # stale_ttl old still answers pick/run/embed while ONE background refresh checks again; an
    # older one is probed before answering. The defaults keep the promise that a stopped instance
    # leaves the rotation, and a recovered one rejoins it, within 10 s.
    "health_ttl": 5.0,  # seconds a healthy probe result is fresh
    "unhealthy_ttl": 2.0,  # seconds an unhealthy probe result is fresh
    "stale_ttl": 10.0,  # seconds a result may still answer while a background refresh runs
    "timeout": 5.0,  # seconds one health probe may take
    "strategy": "round-robin",
    "concurrency": 256,  # health probes at once
    "connect_timeout": 3.0,  # seconds to connect (run, embed)
    "first_byte_timeout": 600.0,  # seconds until a model answers at all (a cold load takes minutes)
    "liveness_interval": 2.0,  # seconds between "does it still answer?" checks while that first byte is awaited
    "wait": 60.0,  # seconds exec/run/embed wait for a lease when every instance is busy
    "store": "file",  # where the state lives: "file" (the state dir) or redis://host:6379/0
}
STORE_SCHEMES = ("redis://", "rediss://", "unix://")

# What a request gets when its caller does not say (the library's request types and the command line's
# options both take them from here).
DEFAULT_TRIES = 3  # instances a generation tries before giving up
DEFAULT_BATCH_SIZE = 64  # texts per embedding request
DEFAULT_PER_INSTANCE = 2  # embedding requests in flight per instance

DAY = 86400.0


class Bound(Record):
    """A number's rule: a whole number from `low` to `high`, or a measure in `unit` above `low` (at
    least `low` when `floor`) and at most `high`."""

    whole: bool
    low: float
    high: float
    unit: str = "seconds"
    floor: bool = False


_SECONDS = Bound(False, 0.0, DAY)
NUMBERS: dict[str, Bound] = {
    "health_ttl": _SECONDS,
    "unhealthy_ttl": _SECONDS,
    "stale_ttl": _SECONDS,
    "timeout": _SECONDS,
    "connect_timeout": _SECONDS,
    "first_byte_timeout": _SECONDS,
    "liveness_interval": _SECONDS,
    "interval": Bound(False, 0.5, DAY, floor=True),  # health --watch: each instance probed at most twice a second
    "wait": Bound(False, 0.0, DAY, floor=True),  # exec/run/embed: seconds to wait for a lease (0: give up at once)
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


def number_problem(key: str, value: Any, counted: bool = False) -> str | None:
    """Why `value` cannot be the number `key` (a key of NUMBERS), in words, or None. `counted`: a
    whole number must be an int (a count that code counts with; a file may write 8.0)."""
    bound = NUMBERS[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if bound.whole:
        whole = number and (isinstance(value, int) or (not counted and math.isfinite(value) and value.is_integer()))
        if whole and bound.low <= value <= bound.high:
            return None
        return f"must be a whole number from {bound.low:g} to {bound.high:g}, got {value!r}"
    if number and math.isfinite(value) and (bound.low <= value if bound.floor else bound.low < value) \
            and value <= bound.high:
        return None
    least = "at least" if bound.floor else "above"
    return f"must be a number of {bound.unit} {least} {bound.low:g} and at most {bound.high:g}, got {value!r}"


def checked(key: str, value: Any, param: str | None = None) -> Any:
    """`value` if it is a valid `key`, else an InvalidValue (exit 2) naming `param` (or the key) and the value."""
    problem = number_problem(key, value, counted=True)
    if problem is not None:
        raise InvalidValue((param or key,), problem, "give a value in that range")
    return value


def problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be setting `key`, in words, or None. Unknown keys are the user's own."""
    if key == "strategy":
        return None if value in STRATEGIES else f"must be one of {', '.join(STRATEGIES)}, got {value!r}"
    if key not in DEFAULTS:
        return None
    if key == "store":
        return store_problem(value)
    return number_problem(key, value)


def store_problem(value: object) -> str | None:
    """Why `value` cannot name the state store, or None ("file", or a usable redis URL). The value
    is quoted with any password masked (core/state/redis_url.py)."""
    if value == "file":
        return None
    if isinstance(value, str):
        from ollamactl.core.state import redis_url

        if not value.startswith(STORE_SCHEMES):
            value = redis_url.shown(value)
        else:
            try:
                redis_url.parse(value)
            except ValueError as exc:
                return f"is not a usable redis URL: {exc}"
            return None
    return f"must be \"file\" or a redis URL such as redis://host:6379/0, got {value!r}"


def conflict(given: dict[str, Any]) -> tuple[str, str] | None:
    """(key, why) when otherwise valid settings do not fit together, else None.

    Only a stale_ttl given explicitly is checked: left out, it stretches to the longest ttl
    (see health.cache.Freshness), so a registry with only `health_ttl = 300` stays valid.
    """
    if "stale_ttl" not in given:
        return None
    stale = given["stale_ttl"]
    for key in ("health_ttl", "unhealthy_ttl"):
        ttl = given.get(key, DEFAULTS[key])
        if stale < ttl:
            return "stale_ttl", f"must be at least {key} ({ttl:g}), got {stale:g}"
    return None
