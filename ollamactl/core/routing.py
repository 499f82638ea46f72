"""Routing: from a request (type, model, strategy, key) to chosen instances, with I/O at the edges.

`select` is the one code path every entry point uses (`pick` from both its fast and its Typer
parser, `run`, `embed`): it reads the registry and the health cache, probes only what is stale,
screens with the pure functions of `selection`, and persists the strategy's position under the
state lock. With a fresh cache it does no network I/O and imports neither httpx nor asyncio.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from ollamactl.core import registry, selection, state
from ollamactl.core.errors import NoInstanceError, UsageError, warn
from ollamactl.core.registry import Instance, Registry


class Request(NamedTuple):
    request_type: str | None = None  # chat | embedding | None (anything)
    model: str | None = None
    strategy: str | None = None  # None: [settings] strategy, else round-robin
    key: str | None = None
    count: int = 1
    strict: bool = False
    refresh: bool = False


class Decision:
    """The picks, why every instance was kept or dropped, and what the caller may fail over to."""

    def __init__(self, picks: list[Instance], reasons: dict[str, str], instances: tuple[Instance, ...],
                 candidates: list[Instance], health: dict[str, dict] | None = None, fallback: bool = False):
        self.picks = picks
        self.reasons = reasons  # instance id -> why kept or dropped
        self.instances = instances  # every instance considered, for --explain
        self.candidates = candidates  # every eligible instance, registry order
        self.health = health or {}  # the fresh cache entries used
        self.fallback = fallback  # the default instance was used

    def failover_order(self) -> list[Instance]:
        """The first pick, then the other candidates in rotation order after it: for retries."""
        first = self.picks[0]
        ids = [i.id for i in self.candidates]
        if first.id not in ids:
            return [first] + self.candidates
        start = ids.index(first.id)
        return self.candidates[start:] + self.candidates[:start]


def validate(request: Request, reg: Registry) -> str:
    """Check the request's words and return the strategy to use."""
    if request.request_type is not None and request.request_type not in selection.REQUEST_TYPES:
        raise UsageError(f"unknown type {request.request_type!r}", "use chat or embedding")
    strategy = request.strategy or reg.setting("strategy")
    if strategy not in selection.STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}", f"use one of: {', '.join(selection.STRATEGIES)}")
    if request.count < 1:
        raise UsageError(f"count {request.count} is below 1", "use -n 1 or more")
    if request.model is not None and not request.model.strip():
        raise UsageError("the model name is empty", "give a model such as llama3.2")
    return strategy


def select(request: Request, now: float | None = None) -> Decision:
    reg = registry.load()
    strategy = validate(request, reg)
    if not reg.instances:
        default = registry.default_instance()
        return Decision([default] * request.count, {default.id: "chosen (nothing registered)"},
                        (default,), [default], fallback=True)
    now = time.time() if now is None else now
    data = state.read()
    health = _fresh_health(reg, request, data, now)
    screening = selection.screen(reg.instances, request.request_type, request.model, health,
                                 data["breaker"], now, strict=request.strict)
    for message in screening.warnings:
        warn(message)
    reasons = dict(screening.dropped)
    if not screening.candidates:
        if screening.model_missing and request.strict:
            raise NoInstanceError(
                f"model {selection.normalise_model(request.model)} is on no healthy instance (--strict)",
                _why(reasons),
            )
        return _fallback(reg, request, reasons)
    picks = _choose(strategy, screening.candidates, request, health, data)
    chosen = {i.id for i in picks}
    for instance in screening.candidates:
        reasons[instance.id] = "chosen" if instance.id in chosen else "eligible"
    return Decision(picks, reasons, reg.instances, screening.candidates, health)


def _fresh_health(reg: Registry, request: Request, data: dict, now: float) -> dict[str, dict]:
    """Cached health for each instance that could serve, probing (and saving) the stale ones."""
    ttl = reg.setting("health_ttl")
    health: dict[str, dict] = {}
    stale = []
    for instance in reg.instances:
        if not instance.enabled or (request.request_type and not instance.serves(request.request_type)):
            continue
        entry = data["health"].get(instance.id)
        if not request.refresh and state.health_entry_ok(entry) and state.is_fresh(entry, instance.url, now, ttl):
            health[instance.id] = entry
        else:
            stale.append(instance)
    if stale:
        for result in _probe(stale, reg):
            health[result.id] = result.to_cache()
    return health


def _probe(instances: list[Instance], reg: Registry) -> list:
    from ollamactl.core import health

    results = health.check(instances, timeout=reg.setting("timeout"), concurrency=reg.setting("concurrency"))
    health.save(results)
    return results


def _choose(strategy: str, candidates: list[Instance], request: Request, health: dict, data: dict) -> list:
    kwargs = dict(request_type=request.request_type, model=request.model, key=request.key, health=health,
                  latency=data["latency"])
    if request.key is not None or strategy not in selection.STATEFUL:
        picks, _ = selection.choose(strategy, candidates, request.count, entropy=os.urandom(4 * request.count),
                                    positions=data, **kwargs)
        return picks

    def advance(current: dict) -> list:
        picks, updates = selection.choose(strategy, candidates, request.count, positions=current, **kwargs)
        for section, values in updates.items():
            current[section].update(values)
        return picks

    return state.update(advance)


def _fallback(reg: Registry, request: Request, reasons: dict[str, str]) -> Decision:
    """Nothing eligible: the default instance if it answers a probe, else NoInstanceError."""
    default = registry.default_instance()
    if default.url not in {i.url for i in reg.instances}:
        from ollamactl.core import health

        result = health.check([default], timeout=reg.setting("timeout"))[0]
        if result.healthy:
            warn(f"no registered instance is eligible; using the default instance {default.url}")
            reasons[default.id] = "chosen (fallback)"
            return Decision([default] * request.count, reasons, reg.instances + (default,), [default],
                            {default.id: result.to_cache()}, fallback=True)
        reasons[default.id] = f"unhealthy: {result.error}"
    raise NoInstanceError("no eligible instance", _why(reasons))


def _why(reasons: dict[str, str]) -> str:
    return "; ".join(f"{instance_id}: {reason}" for instance_id, reason in reasons.items()) or "nothing registered"
