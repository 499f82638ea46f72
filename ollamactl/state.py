"""The state file: health cache, round-robin cursors and circuit-breaker counts, shared by processes.

It is a JSON cache owned by the machine: reads need no lock (writes replace it atomically),
read-modify-writes hold the state lock for milliseconds, and a corrupt or unreadable file is
rebuilt with a warning instead of failing the command.

Layout (version 1):
    {"version": 1,
     "health":  {instance_id: health result dict (see health.py)},
     "cursors": {pool: int},                       # round-robin positions
     "weights": {pool: {instance_id: int}},        # smooth weighted round-robin currents
     "breaker": {instance_id: {"failures": int, "ejections": int, "ejected_until": float}},
     "latency": {instance_id: float}}              # recent request latency, ms
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from ollamactl import paths
from ollamactl.errors import warn

STATE_VERSION = 1
SECTIONS = ("health", "cursors", "weights", "breaker", "latency")
T = TypeVar("T")


def empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, **{section: {} for section in SECTIONS}}


def read() -> dict[str, Any]:
    """The current state; an empty one if the file is missing, and a warning if it was corrupt."""
    path = paths.state_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return empty()
    except OSError as exc:
        warn(f"cannot read state file {path} ({exc.strerror}); starting from an empty cache")
        return empty()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not _well_formed(data):
        warn(f"state file {path} was corrupt; it is being rebuilt (it only holds caches and cursors)")
        return empty()
    for section in SECTIONS:
        data.setdefault(section, {})
    return data


def _well_formed(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("version") == STATE_VERSION
        and all(isinstance(data.get(section, {}), dict) for section in SECTIONS)
    )


def update(change: Callable[[dict[str, Any]], T]) -> T:
    """Apply `change` to the state under the lock and write it back atomically; returns its result."""
    from ollamactl import files

    with files.locked(paths.state_lock_file()):
        data = read()
        result = change(data)
        payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
        files.atomic_write(paths.state_file(), payload, durable=False)  # a cache: atomic is enough
    return result
