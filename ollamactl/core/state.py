"""The state's schema: health cache, round-robin cursors and circuit-breaker counts, and its checks.

Pure functions over the parsed document; where it is kept (a file, Redis) is `store`'s business.
Anything that fails validation is a cache miss, never an error: the state is disposable.

Layout (version 1):
    {"version": 1,
     "health":  {instance_id: health result dict (see health.py)},
     "cursors": {pool: int},                       # round-robin positions
     "weights": {pool: {instance_id: int}},        # smooth weighted round-robin currents
     "breaker": {instance_id: {"failures": int, "ejections": int, "ejected_until": float}},
     "latency": {instance_id: float}}              # recent request latency, ms
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

STATE_VERSION = 1
SECTIONS = ("health", "cursors", "weights", "breaker", "latency")
FUTURE_SLACK_S = 60.0  # a health entry stamped further ahead than this is not trusted


def empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, **{section: {} for section in SECTIONS}}


def validate(data: Any) -> tuple[dict[str, Any], str | None]:
    """`data` (parsed JSON) as a usable state, and what was wrong with it in words (None: nothing).

    A document of the wrong shape is replaced by an empty state. Cursors, weights, breaker and
    latency entries of the wrong shape (a hand edit, another version) are dropped, so callers can
    trust their types; health entries are kept as they are: check them with `health_entry_ok`.
    """
    if not _well_formed(data):
        return empty(), "was corrupt; it is being rebuilt (it only holds caches and cursors)"
    for section in SECTIONS:
        data.setdefault(section, {})
    dropped = 0
    for section, valid in _ENTRY_CHECKS.items():
        entries = data[section]
        for key in [key for key, value in entries.items() if not valid(value)]:
            del entries[key]
            dropped += 1
    if dropped:
        return data, (f"had {dropped} malformed entr{'y' if dropped == 1 else 'ies'}; they were dropped"
                      " (it only holds caches and cursors)")
    return data, None


def _well_formed(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and type(data.get("version")) is int
        and data["version"] == STATE_VERSION
        and all(isinstance(data.get(section, {}), dict) for section in SECTIONS)
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def health_entry_ok(entry: Any) -> bool:
    """Whether `entry` has the health cache's shape (see HealthResult.to_cache)."""
    if not isinstance(entry, dict):
        return False
    models, loaded, latency = entry.get("models") or [], entry.get("loaded"), entry.get("latency_ms")
    return (
        isinstance(entry.get("url"), str)
        and isinstance(entry.get("healthy"), bool)
        and _number(entry.get("checked_at"))
        and _optional(entry.get("error"), str)
        and _optional(entry.get("version"), str)
        and (latency is None or _number(latency))
        and isinstance(models, list)
        and all(isinstance(m, dict) and isinstance(m.get("name"), str) for m in models)
        and (loaded is None or (isinstance(loaded, list) and all(isinstance(n, str) for n in loaded)))
    )


def is_fresh(entry: dict[str, Any], url: str, now: float, ttl: float) -> bool:
    """Whether a well-formed health entry may be trusted for an instance now at `url`.

    It must be for that url, younger than `ttl` s, and not stamped in the future beyond a small
    slack (a clock that jumped back would otherwise keep an old answer fresh for ever).
    """
    age = now - entry["checked_at"]
    return entry["url"] == url and -FUTURE_SLACK_S <= age <= ttl


def _breaker_ok(entry: Any) -> bool:
    return isinstance(entry, dict) and all(
        _number(entry.get(key, 0)) for key in ("failures", "ejections", "ejected_until"))


_ENTRY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "cursors": lambda value: type(value) is int,
    "weights": lambda value: isinstance(value, dict) and all(_number(v) for v in value.values()),
    "breaker": _breaker_ok,
    "latency": _number,
}
