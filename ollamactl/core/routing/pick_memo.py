"""What a `pick` chooses from, kept beside the state, so a pick of a large fleet skips its per-instance work.

A pick from the cache reads the registry (its snapshot: 1,000 Instances) and the state (its view:
1,000 health entries with their model lists), then checks each instance's entry for freshness,
screens type, health, model and breaker, and splits tiers by capacity: a few milliseconds at 1,000
instances, every call, to reach the same handful of candidates. The memo keeps, per request shape
(type, model, strict), what that work ended with: the candidates (the tier in use with room), the
screening's warnings, and, for the strategies, the candidates' `loaded` models, latencies and live
leases. A pick reads it instead, then runs the same strategy code (`routing.apply_strategy`, the
same shared cursor), so the answer is the one the full path gives.

It stands for the files it was made from and for a span of time:
- keyed by the registry file (path, inode, size, mtime in ns), the state file (inode, size, mtime),
  `$OLLAMACTL_STORE` and the Python version: any edit or rewrite of either file is another key;
- made only when every entry used was fresh (nothing probed, nothing stale), the store is the
  state file and said nothing (a broken state warns on every read: its picks keep the full path),
  no instance holds a stored API key (keys stay in the 0600 registry only), the registry file is
  older than marshal_cache.RACY_S (an edit in the same clock tick could keep its stat), and so is
  the state file unless the state came from its view (core/state/view.py, written with the file by its writer:
  the memo is as trusted as that view);
- valid only between the nearest moments, before and after it was made, at which anything it
  settled changes with the clock alone: a health entry turning stale or too old (health_ttl,
  unhealthy_ttl, stale_ttl) or ceasing to be "from the future", a breaker ejection ending (or
  becoming one the state's checks accept), a lease expiring. Outside that span (less MARGIN_S, so
  rounding never decides), the pick takes the full path.
So a pick from stale entries always takes the full path, which starts the one background refresh
(stale-while-revalidate) as before; it makes no memo, as the refresh is about to rewrite the state.
`weighted` keeps the full path (it rewrites the state each pick), and so does `fastest` (it reads
the metrics, which every run changes).
The memo is a cache in the 0700 state dir (core/state/marshal_cache.py): anything unreadable or of another
shape is ignored.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

from ollamactl.core.health.cache import Freshness
from ollamactl.core.paths import STATE_NAME
from ollamactl.core.registry import instances as registry
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import router as routing
from ollamactl.core.routing import selection
from ollamactl.core.state import marshal_cache
from ollamactl.core.state import schema as state

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from ollamactl.core.state.store import Store

NAME = "pick.memo"
FORMAT = 1
MARGIN_S = 0.001


def key_of(registry_file: str, state_dir: str, store_env: str) -> tuple | None:
    """What a memo must have been made from to stand for the registry and state files as they are now."""
    try:
        reg = os.stat(registry_file)
        held = os.stat(os.path.join(state_dir, STATE_NAME))
    except OSError:
        return None
    return (FORMAT, sys.version, registry_file, store_env, reg.st_ino, reg.st_size, reg.st_mtime_ns,
            held.st_ino, held.st_size, held.st_mtime_ns)


def shape_of(request: routing.Request) -> tuple:
    """The part of a request the candidates depend on."""
    return request.request_type, request.model, request.strict or request.need_model


class Memo:
    """The memo for one key: the registry's default strategy and an entry per request shape."""

    def __init__(self, key: tuple, default_strategy: str, entries: dict[tuple, bytes]):
        self.key = key
        self.default_strategy = default_strategy
        self.entries = entries

    def answer(self, request: routing.Request, store: Callable[[], Store],
               warn: Callable[[str], None]) -> list[Instance] | None:
        """The picks for `request` as `routing.select` would make them, or None when this memo cannot
        tell (no entry for its shape, outside the entry's span, weighted, --refresh)."""
        strategy = routing.checked(request, self.default_strategy)  # its usage errors, as the full path
        if request.refresh or (strategy in ("weighted", "fastest") and request.key is None):
            return None
        entry = _entry(self.entries.get(shape_of(request)))
        if entry is None:
            return None
        since, until, warnings, columns, loaded, measured, latency, inflight = entry
        now = time.time()
        if not since + MARGIN_S < now < until - MARGIN_S:
            return None
        for message in warnings:
            warn(message)
        candidates = _Candidates(columns)
        health = {}  # what warm and least-latency read of the health entries (the others read none)
        if request.key is None and strategy in ("warm", "least-latency"):
            health = {i: {"loaded": loaded.get(i), "latency_ms": ms}
                      for i, ms in zip(columns[0], measured, strict=True)}
        # _Candidates is a read-only sequence of Instances in all but name (no typing import on this path)
        return routing.apply_strategy(strategy, candidates, request, health,  # type: ignore[arg-type]
                                      {"latency": latency}, store(), inflight)


class _Candidates:
    """The candidates as a read-only sequence over the memo's columns (one tuple per Instance field):
    an Instance is made when the strategy looks at it, so a round-robin pick of 1,000 makes one."""

    def __init__(self, columns: tuple[tuple, ...]):
        self._columns = columns
        self._count = len(columns[0])

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> Instance:  # IndexError past the end: iteration stops there
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return tuple.__new__(Instance, [column[index] for column in self._columns])


def load(state_dir: str, key: tuple | None) -> Memo | None:
    """The memo made for `key`, if the state dir holds one of the right shape."""
    if key is None:
        return None
    stored = marshal_cache.load(os.path.join(state_dir, NAME), key, 2)
    if stored is None:
        return None
    default_strategy, entries = stored
    if default_strategy not in selection.STRATEGIES or type(entries) is not dict \
            or not all(type(blob) is bytes for blob in entries.values()):
        return None
    return Memo(key, default_strategy, entries)


def _entry(blob: bytes | None) -> tuple | None:
    """A shape's entry (kept marshalled apart, so a pick loads only its own), if well formed."""
    if blob is None:
        return None
    try:
        entry = marshal.loads(blob)
        since, until, warnings, columns, loaded, measured, latency, inflight = entry
    except (ValueError, EOFError, TypeError):
        return None
    ok = (type(since) is float and type(until) is float
          and type(warnings) is tuple and all(type(w) is str for w in warnings)
          and registry.columns_ok(columns) and len(columns[0]) > 0
          and type(measured) is tuple and len(measured) == len(columns[0])
          and all(type(part) is dict for part in (loaded, latency, inflight)))
    return entry if ok else None


def settled(key: tuple, data: dict) -> bool:
    """Whether the files of `key` may have a memo made from `data`, the state read from the second
    (see the module docstring): each settled (marshal_cache.settled), or the state read from its view."""
    viewed = type(data["health"]) is state.CheckedHealth  # the writer's view: as trusted as it is
    return marshal_cache.settled(key[6] / 1e9) and (viewed or marshal_cache.settled(key[9] / 1e9))


def entry_of(prepared: routing.Prepared, store: Store) -> tuple | None:
    """The memo entry for what a select worked from, or None when it may not be kept."""
    reg, data, lookup, candidates, now = (prepared.reg, prepared.data, prepared.lookup, prepared.candidates,
                                          prepared.now)
    if any(i.api_key for i in reg.instances) or not candidates or lookup.stale:
        return None
    freshness = Freshness.of(reg)
    moments: list[float] = []
    for entry in lookup.entries.values():
        checked = entry["checked_at"]
        moments += (checked - state.FUTURE_SLACK_S, checked + freshness.stale,
                    checked + (freshness.healthy if entry["healthy"] else freshness.unhealthy))
    for entry in data["breaker"].values():
        until = float(entry.get("ejected_until") or 0.0)
        moments += (until, until - state.MAX_EJECTION_S)
    moments += (float(until) for held in data["leases"].values() for until in held.values())
    since = max((m for m in moments if m <= now), default=-float("inf"))
    until = min((m for m in moments if m > now), default=float("inf"))
    ids = [i.id for i in candidates]
    entries = [lookup.entries[i] for i in ids]
    loaded = {i: entry["loaded"] for i, entry in zip(ids, entries, strict=True) if entry.get("loaded")}
    measured = tuple(entry.get("latency_ms") for entry in entries)  # by candidate, as the columns
    latency = {i: data["latency"][i] for i in ids if i in data["latency"]}
    counted = store.inflight(ids, data)  # as of the clock now: kept only if that is still within the span
    if not since + MARGIN_S < now <= time.time() < until - MARGIN_S:
        return None
    inflight = {i: count for i, count in counted.items() if count}
    return (float(since), float(until), prepared.warnings, tuple(zip(*candidates, strict=True)), loaded, measured,
            latency, inflight)


def save(state_dir: str, key: tuple, default_strategy: str, shape: tuple, entry: tuple,
         previous: Memo | None) -> None:
    """Keep `entry` for `shape` in the memo for `key` (with the other shapes of `previous`, same key)."""
    entries = dict(previous.entries) if previous is not None and previous.key == key else {}
    try:
        entries[shape] = marshal.dumps(entry)
    except ValueError:  # unmarshallable: no memo, never an error
        return
    marshal_cache.save(os.path.join(state_dir, NAME), key, default_strategy, entries)
