"""The health cache's one rule of freshness, and "cached or probe" for every reader.

A cached result is usable for an instance when it is well formed, for the instance's current URL
and not stamped in the future. Its age then decides (settings, see core/settings.py):
- younger than its ttl (`health_ttl` when healthy, `unhealthy_ttl` when not): fresh, used as is;
- up to `stale_ttl` old: stale; routing (pick, run, embed) still answers from it and starts ONE
  background refresh (`revalidate`, see core/health/background.py), so a pick never waits while the
  cache is in use; readers that pass no `revalidate` (models, Fleet.health) probe it instead;
- older: probed before answering.
So a stopped instance leaves the rotation, and a recovered one rejoins it, within about
`health_ttl` (resp. `unhealthy_ttl`) plus one refresh, and never later than `stale_ttl`.

Cheap to import (no httpx, asyncio or dataclasses): `pick` with a usable cache runs through here.
"""

from __future__ import annotations

from ollamactl.core.settings import DEFAULTS
from ollamactl.core.state import schema as state
from ollamactl.timefmt import age as age_words

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable
    from typing import Any
    from typing import NamedTuple as Record

    from ollamactl.core.registry.instances import Instance, Registry
    from ollamactl.core.state.store import Store
else:
    from ollamactl.core.records import Record

FRESH, STALE = "fresh", "stale"
REFRESH_HINT = "`ollamactl refresh` checks now"


class Freshness(Record):
    """How long results stay fresh (healthy, unhealthy) and how old they may be to answer at all."""

    healthy: float
    unhealthy: float
    stale: float

    @classmethod
    def of(cls, reg: Registry) -> Freshness:
        """The registry's settings; stale_ttl left out stretches to the longest ttl (settings.conflict)."""
        healthy, unhealthy = float(reg.setting("health_ttl")), float(reg.setting("unhealthy_ttl"))
        given = reg.settings.get("stale_ttl")
        stale = float(given) if given is not None else max(float(DEFAULTS["stale_ttl"]), healthy, unhealthy)
        return cls(healthy, unhealthy, stale)

    def state(self, entry: dict[str, Any], age: float) -> str | None:
        """FRESH, STALE or None (too old to answer from) for a well-formed entry of this age."""
        if age <= (self.healthy if entry["healthy"] else self.unhealthy):
            return FRESH
        return STALE if age <= self.stale else None


def usable_entry(data: Any, instance: Instance, now: float) -> dict[str, Any] | None:
    """The cached entry for `instance` if it is well formed, for its current URL and not from the future."""
    health = data.get("health") if isinstance(data, dict) else None
    return _usable(health, instance, now) if isinstance(health, dict) else None


def _usable(health: dict[str, Any], instance: Instance, now: float) -> dict[str, Any] | None:
    entry = health.get(instance.id)
    if entry is None:
        return None
    checked = type(health) is state.CheckedHealth
    well_formed = instance.id not in health.malformed if checked else state.health_entry_ok(entry)  # type: ignore[attr-defined]
    return entry if well_formed and state.is_current(entry, instance.url, now) else None


class Lookup(Record):
    """The entries a reader may use, by instance id, with their ages and which ones are stale."""

    entries: dict[str, dict[str, Any]]
    ages: dict[str, float]  # seconds since each entry's check
    stale: frozenset[str]  # answered from a stale entry while a background refresh checks again
    probed: bool = False  # some entries are fresh results of a probe made now (not from the cache)

    def words(self, instance_id: str) -> str:
        """How fresh an instance's entry is, in words, with how to refresh where it matters."""
        age = self.ages.get(instance_id)
        if age is None:
            return "not checked"
        checked = f"checked {age_words(age)} ago"
        if instance_id in self.stale:
            return f"{checked}; re-checking in the background, {REFRESH_HINT}"
        if not self.entries[instance_id]["healthy"]:
            return f"{checked}; {REFRESH_HINT}"
        return checked


def known_down(instances: Iterable[Instance], reg: Registry, data: dict[str, Any],
               now: float) -> dict[str, tuple[dict[str, Any], float]]:
    """{id: (entry, age)} of the instances whose usable cached result says unhealthy and is young
    enough to answer from (`stale_ttl`): model commands leave them out rather than wait on them."""
    health = data.get("health") if isinstance(data, dict) else None
    if not isinstance(health, dict):
        return {}
    freshness = Freshness.of(reg)
    down = {}
    for instance in instances:
        entry = _usable(health, instance, now)
        if entry is not None and not entry["healthy"] and freshness.state(entry, now - entry["checked_at"]):
            down[instance.id] = (entry, now - entry["checked_at"])
    return down


def current(instances: Iterable[Instance], reg: Registry, store: Store, data: dict[str, Any], now: float,
            refresh: bool = False, revalidate: Callable[[], bool] | None = None,
            warn: Callable[[str], None] | None = None, recheck: bool = False) -> Lookup:
    """Each instance's usable health entry: cached where fresh, probed (and saved) otherwise.

    With `revalidate` (routing), stale entries are used too and `revalidate()` is called once to
    refresh them in the background; when it returns False (no background refresh possible), they
    are probed now like the rest. `refresh` probes everything; `recheck` probes every instance the
    cache calls healthy and keeps its verdict on those it knows are down (it does not wait on them).
    A probe's note goes to `warn`.
    """
    freshness = Freshness.of(reg)
    entries: dict[str, dict[str, Any]] = {}
    ages: dict[str, float] = {}
    stale: list[Instance] = []
    missing: list[Instance] = []
    health = data.get("health") if isinstance(data, dict) else None
    cached = {} if refresh or not isinstance(health, dict) else health
    for instance in instances:
        entry = _usable(cached, instance, now)
        verdict = None if entry is None or (recheck and entry["healthy"]) \
            else freshness.state(entry, now - entry["checked_at"])
        if verdict == FRESH or (verdict == STALE and revalidate is not None):
            entries[instance.id] = entry  # type: ignore[assignment]
            ages[instance.id] = now - entry["checked_at"]  # type: ignore[index]
            if verdict == STALE:
                stale.append(instance)
        else:
            missing.append(instance)
    if stale and not (revalidate is not None and revalidate()):
        missing += stale
        stale = []
    if missing:
        from ollamactl.core.health import probe as probes
        from ollamactl.core.registry.keys import keys_of

        results = probes.check(missing, timeout=reg.setting("timeout"), concurrency=reg.setting("concurrency"),
                               keys=keys_of([*reg.instances, *missing]))
        probes.save(store, results)
        for result in results:
            if result.note and warn is not None:
                warn(result.note)
            entries[result.id] = result.to_cache()
            ages[result.id] = max(0.0, now - result.checked_at)
    return Lookup(entries, ages, frozenset(i.id for i in stale), bool(missing))
