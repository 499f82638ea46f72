"""The health cache: which cached probe results may be used now, and probing the rest.

One rule for every reader (routing, `models`, `export`): an entry is used when it is well formed,
for the instance's current URL and young enough; anything else is probed and the result saved.
Cheap to import (no httpx, asyncio or dataclasses): `pick` with a fresh cache runs through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ollamactl.core import state

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.registry import Instance, Registry
    from ollamactl.core.store import Store


def cached_entry(data: Any, instance: Instance, now: float, ttl: float) -> dict[str, Any] | None:
    """The cached entry for `instance` if it may be used now, else None."""
    health = data.get("health") if isinstance(data, dict) else None
    entry = health.get(instance.id) if isinstance(health, dict) else None
    if state.health_entry_ok(entry) and state.is_fresh(entry, instance.url, now, ttl):
        return entry
    return None


def current(instances: Iterable[Instance], reg: Registry, store: Store, data: dict[str, Any], now: float,
            refresh: bool = False, warn: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Each instance's health entry, by id: cached where usable (unless `refresh`), probed and saved otherwise."""
    ttl = float(reg.setting("health_ttl"))
    entries: dict[str, dict[str, Any]] = {}
    stale = []
    for instance in instances:
        entry = None if refresh else cached_entry(data, instance, now, ttl)
        if entry is None:
            stale.append(instance)
        else:
            entries[instance.id] = entry
    if stale:
        from ollamactl.core import health
        from ollamactl.core.http import keys_of

        results = health.check(stale, timeout=reg.setting("timeout"), concurrency=reg.setting("concurrency"),
                               keys=keys_of([*reg.instances, *stale]))
        health.save(store, results)
        for result in results:
            if result.note and warn is not None:
                warn(result.note)
        entries.update((result.id, result.to_cache()) for result in results)
    return entries
