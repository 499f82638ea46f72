"""The state's schema: health cache, round-robin cursors and circuit-breaker counts, and its checks.

Pure functions over the parsed document; where it is kept (a file, Redis) is `store`'s business.
Anything that fails validation is a cache miss, never an error: the state is disposable.

Layout (version 1):
    {"version": 1,
     "health":  {instance_id: health result dict (see health.py)},
     "cursors": {pool: int},                       # round-robin positions
     "weights": {pool: {instance_id: int}},        # smooth weighted round-robin currents
     "breaker": {instance_id: {"failures": int, "ejections": int, "ejected_until": float}},
     "latency": {instance_id: float},              # recent request latency, ms
     "leases":  {instance_id: {holder: float}},    # live work per instance: holder -> expires at
     "queues":  {pool: {ticket: [float, float]}},  # FIFO waiters for a lease: [arrived, expires at]
     "metrics": {instance_id: what it served (see metrics.py)}}
"""

from __future__ import annotations

import math
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

STATE_VERSION = 1
SECTIONS = ("health", "cursors", "weights", "breaker", "latency", "leases", "queues", "metrics")
FUTURE_SLACK_S = 60.0  # a health entry stamped further ahead than this is not trusted
MAX_BYTES = 32 * 1024 * 1024  # a larger state file is not ours: rebuilt
MAX_MODELS = 1000  # models kept per instance in the health cache
MAX_EPOCH = 4102444800.0  # 2100-01-01: a later time stamp is corrupt, not a date
MAX_EJECTION_S = 3600.0  # no breaker ejects for longer (its cap is minutes): further ahead is corrupt
MAX_COUNT = 1_000_000  # breaker counters
MAX_POSITION = 2**53  # cursors and weighted-round-robin currents
MAX_LATENCY_MS = 1e9
MAX_DEPTH = 8  # nesting of sections this version does not know


def empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, **{section: {} for section in SECTIONS}}


def validate(data: Any, now: float | None = None) -> tuple[dict[str, Any], str | None]:
    """`data` (parsed JSON) as a usable state, and what was wrong with it in words (None: nothing).

    A document of the wrong shape is replaced by an empty state. Cursors, weights, breaker and
    latency entries of the wrong type or out of range (a hand edit, another version, a time stamp
    of 1e300) are dropped, so callers can trust their types and values; health entries are kept as
    they are and checked when used (`health_entry_ok`), so an entry nobody reads costs nothing.
    """
    if not _well_formed(data):
        return empty(), "was corrupt; it is being rebuilt (it only holds caches and cursors)"
    for section in SECTIONS:
        data.setdefault(section, {})
    moment = time.time() if now is None else now
    dropped = 0
    for section, valid in _ENTRY_CHECKS.items():
        entries = data[section]
        for key in [key for key, value in entries.items() if not valid(value, moment)]:
            del entries[key]
            dropped += 1
    for key in [key for key in data if key not in SECTIONS and key != "version" and not shallow(data[key])]:
        del data[key]
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


def shallow(value: Any, levels: int = MAX_DEPTH) -> bool:
    """Whether `value` nests dicts and lists at most `levels` deep, found without recursion (sections
    of another version are kept if so; the registry's document is checked with it too)."""
    level = [value]
    for _ in range(levels):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return True
    return False


def _number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)


def _count(value: Any, high: float) -> bool:
    return type(value) is int and 0 <= value <= high


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _model_ok(model: Any) -> bool:
    return (isinstance(model, dict) and isinstance(model.get("name"), str)
            and _optional(model.get("digest"), str)
            and (model.get("size") is None or _number(model["size"], 0)))


def health_entry_ok(entry: Any) -> bool:
    """Whether `entry` has the health cache's shape and sane values (see HealthResult.to_cache)."""
    if not isinstance(entry, dict):
        return False
    models, loaded, latency = entry.get("models") or [], entry.get("loaded"), entry.get("latency_ms")
    return (
        isinstance(entry.get("url"), str)
        and isinstance(entry.get("healthy"), bool)
        and _number(entry.get("checked_at"), 0, MAX_EPOCH)
        and _optional(entry.get("error"), str)
        and _optional(entry.get("version"), str)
        and (latency is None or _number(latency, 0, MAX_LATENCY_MS))
        and isinstance(models, list)
        and len(models) <= MAX_MODELS
        and all(_model_ok(m) for m in models)
        and (loaded is None or (isinstance(loaded, list) and len(loaded) <= MAX_MODELS
                                and all(isinstance(n, str) for n in loaded)))
    )


class CheckedHealth(dict):
    """A health section checked when it was stored (a state view, see core/state/view.py): the
    entries named in `malformed` failed `health_entry_ok`, the others need no check again."""

    malformed: frozenset[str] = frozenset()


def malformed_entries(health: dict[str, Any]) -> list[str]:
    """The keys of a health section's entries that fail `health_entry_ok`."""
    return [key for key, entry in health.items() if not health_entry_ok(entry)]


def is_current(entry: dict[str, Any], url: str, now: float) -> bool:
    """Whether a well-formed health entry is about an instance now at `url`, and not stamped in
    the future beyond a small slack (a clock that jumped back would otherwise keep an old answer
    fresh for ever). How old it may be is health.cache's business."""
    return entry["url"] == url and now - entry["checked_at"] >= -FUTURE_SLACK_S


def _breaker_ok(entry: Any, now: float) -> bool:
    return (
        isinstance(entry, dict)
        and _count(entry.get("failures", 0), MAX_COUNT)
        and _count(entry.get("ejections", 0), MAX_COUNT)
        and _number(entry.get("ejected_until", 0), 0, now + MAX_EJECTION_S)
    )


def _metrics_ok(entry: Any) -> bool:
    from ollamactl.core.metrics.counters import entry_ok

    return entry_ok(entry)


_ENTRY_CHECKS: dict[str, Callable[[Any, float], bool]] = {
    "cursors": lambda value, now: type(value) is int and abs(value) <= MAX_POSITION,
    "weights": lambda value, now: isinstance(value, dict) and all(
        _number(v, -MAX_POSITION, MAX_POSITION) for v in value.values()),
    "breaker": _breaker_ok,
    "metrics": lambda value, now: _metrics_ok(value),
    "latency": lambda value, now: _number(value, 0, MAX_LATENCY_MS),
    "leases": lambda value, now: isinstance(value, dict) and all(_number(v) for v in value.values()),
    "queues": lambda value, now: isinstance(value, dict) and all(
        isinstance(v, list) and len(v) == 2 and all(_number(x) for x in v) for v in value.values()),
}
