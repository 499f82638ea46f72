"""Routing: from a request (type, model, strategy, key) to chosen instances, with I/O at the edges.

`select` is the one code path every entry point uses (`pick` from both its fast and its Typer
parser, `run`, `embed`, `Fleet.pick`): it takes the registry and the state store, uses the health
cache where it is fresh and probes the rest, screens with the pure functions of `selection`, and
persists the strategy's position through the store. Priority tiers and capacity (`max_inflight`
against the store's live leases) narrow the candidates before the strategy runs; when every one is
at capacity it raises BusyError (leases.hold waits on that). With a usable cache (fresh, or stale
while a background refresh runs: see health_cache) it does no network I/O and imports neither httpx
nor asyncio. Every health reason says how old its result is. Warnings go to the caller's `warn`.
"""

from __future__ import annotations

import os
import time
from functools import partial

from ollamactl.core import params, settings
from ollamactl.core.errors import BusyError, NoInstanceError, Said, UsageError
from ollamactl.core.health import cache as health_cache
from ollamactl.core.registry.instances import DEFAULT_URL, Instance, Registry
from ollamactl.core.registry.keys import holds, keys_of, redact
from ollamactl.core.routing import selection

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Sequence
    from typing import NamedTuple as Record

    from ollamactl.core.state.store import Store

    Warn = Callable[[str], None]
else:
    from ollamactl.core.records import Record


class Request(Record):
    request_type: str | None = None  # chat | embedding | None (anything)
    model: str | None = None
    strategy: str | None = None  # None: [settings] strategy, else round-robin
    key: str | None = None
    count: int = 1  # type: ignore[assignment]  # a field, as NamedTuple allows, hiding tuple.count
    strict: bool = False  # exit 3 rather than fall back (model on no healthy instance; the default instance)
    refresh: bool = False
    need_model: bool = False  # run/embed: a model on no healthy instance is an error, strict or not
    recheck: bool = False  # probe the instances the cache calls healthy again (not those it knows are down)


class ModelMissing(NoInstanceError):
    """The model is on no healthy instance; `details` names each instance and what it holds."""

    def __init__(self, model: str, details: list[str], strict: bool):
        super().__init__(Said("model {model} is on no healthy instance" + (" ({strict=True})" if strict else ""),
                              model=model),
                         "use a model listed below, or pull it onto an instance")
        self.model = model
        self.details = tuple(details)


def no_registry_warning(default: Instance) -> str:
    """What is said when nothing is registered and the default instance is used."""
    return (f"no instances registered; using the default instance {default.url} (OLLAMA_HOST, else"
            f" {DEFAULT_URL}); add one with `ollamactl add URL`")


class Decision(Record):
    """The picks, why every instance was kept or dropped, and what the caller may fail over to."""

    picks: list[Instance]
    reasons: dict[str, str]  # instance id -> why dropped (or kept, where no health lookup was made): see `explained`
    instances: tuple[Instance, ...]  # every instance considered, for --explain
    candidates: list[Instance]  # the eligible instances of the tier in use with free capacity, registry order
    health: dict[str, dict]  # the cache entries used
    spare: tuple[Instance, ...] = ()  # eligible ones with free capacity in the lower tiers, best first
    lookup: health_cache.Lookup | None = None  # the health entries' ages, for the candidates' words
    notes: Callable[[], dict[str, str]] | None = None  # what the strategy reckoned per candidate (fastest)

    def explained(self) -> dict[str, str]:
        """Why every instance was kept or dropped, by id: the candidates' words (chosen or eligible,
        and how fresh, and what `fastest` reckoned) are made here, when asked (--explain), not on every
        pick of a large fleet."""
        words = dict(self.reasons)
        if self.lookup is not None:
            chosen = {i.id for i in self.picks}
            notes = self.notes() if self.notes is not None else {}
            for instance in self.candidates:
                state = "chosen" if instance.id in chosen else "eligible"
                note = notes.get(instance.id)
                words[instance.id] = f"{state} ({self.lookup.words(instance.id)})" + (f"; {note}" if note else "")
        return words

    def failover_order(self, first: Instance | None = None) -> list[Instance]:
        """`first` (default: the first pick), then the other candidates in rotation order after it,
        then the lower tiers: for retries."""
        first = first or self.picks[0]
        ids = [i.id for i in self.candidates]
        if first.id not in ids:
            return [first] + [i for i in self.candidates + list(self.spare) if i.id != first.id]
        start = ids.index(first.id)
        return self.candidates[start:] + self.candidates[:start] + list(self.spare)


def validate(request: Request, reg: Registry) -> str:
    """Check the request's words and return the strategy to use."""
    return checked(request, reg.setting("strategy"))


def checked(request: Request, default_strategy: str) -> str:
    """`validate` with the registry's [settings] strategy given (the pick memo keeps it)."""
    if request.request_type is not None and request.request_type not in selection.REQUEST_TYPES:
        raise UsageError(f"unknown type {request.request_type!r}", "use chat or embedding")
    strategy = default_strategy if request.strategy is None else request.strategy
    if strategy not in selection.STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}", f"use one of: {', '.join(selection.STRATEGIES)}")
    settings.checked("count", request.count)
    for param in ("key", "model"):
        if getattr(request, param) is not None:
            params.text(param, getattr(request, param))
    if request.key is not None and not request.key.strip():
        raise UsageError(Said("empty key: {key} was given an empty value (an unset variable?)"),
                         Said("give a non-empty key, or leave {key} out for no stickiness"))
    if request.model is not None:
        params.model(request.model)
    return strategy


class Prepared(Record):
    """What a `select` answered from the cache alone worked from, up to its strategy: enough for
    core/routing/pick_memo.py to answer the same request again while none of it changes."""

    reg: Registry
    data: dict  # the state as read
    lookup: health_cache.Lookup
    warnings: tuple[str, ...]  # the screening's, said in this order
    candidates: list[Instance]  # what the strategy chooses from
    now: float


def select(request: Request, reg: Registry, store: Store, warn: Warn, default: Instance,
           now: float | None = None, revalidate: Callable[[], bool] | None = None,
           remember: Callable[[Prepared], None] | None = None) -> Decision:
    """Choose instances for `request`; `default` serves when nothing is registered (or as the last resort).

    `revalidate` starts a background refresh (see health_cache.current); without it, stale cache
    entries are probed before answering. `remember` is given what the strategy chooses from when
    the answer came from the cache alone (no probe), before it chooses.
    """
    strategy = validate(request, reg)
    if not reg.instances:
        warn(no_registry_warning(default))
        return Decision([default] * request.count, {default.id: "chosen (nothing registered)"},
                        (default,), [default], {})
    now = time.time() if now is None else now
    data = store.read()
    serving = [i for i in reg.instances
               if i.enabled and not (request.request_type and not i.serves(request.request_type))]
    lookup = health_cache.current(serving, reg, store, data, now, refresh=request.refresh, warn=warn,
                                  revalidate=revalidate, recheck=request.recheck)
    health = lookup.entries
    screening = selection.screen(reg.instances, request.request_type, request.model, health,
                                 data["breaker"], now, strict=request.strict or request.need_model)
    for message in screening.warnings:
        warn(message)
    reasons = _aged(screening.dropped, lookup, reg)
    if not screening.candidates:
        if screening.model_missing and (request.strict or request.need_model):
            cached = any(entry.get("checked_at", 0) < now for entry in health.values())
            if request.need_model and not (request.refresh or request.recheck) and cached:  # pulled since?
                return select(request._replace(recheck=True), reg, store, warn, default, revalidate=revalidate)
            raise ModelMissing(selection.normalise_model(request.model or ""),
                               _holdings(serving, health, reasons, keys_of(reg.instances)), request.strict)
        return _fallback(reg, request, reasons, warn, default)
    counted = strategy in ("least-busy", "fastest") or any(i.max_inflight is not None for i in screening.candidates)
    inflight = store.inflight([i.id for i in screening.candidates], data) if counted else {}
    candidates, spare, left_out = selection.by_capacity(screening.candidates, inflight)
    reasons.update(left_out)
    if not candidates:
        count = len(screening.candidates)
        raise BusyError(f"all {count} instance{'s' if count != 1 else ''} busy", _why(reasons), reasons)
    if remember is not None and not lookup.probed:
        remember(Prepared(reg, data, lookup, tuple(screening.warnings), candidates, now))
    picks = apply_strategy(strategy, candidates, request, health, data, store, inflight)
    notes = partial(_speed_notes, candidates, request.model, data.get("metrics", {}), inflight) \
        if strategy == "fastest" else None  # made only when --explain asks
    return Decision(picks, reasons, reg.instances, candidates, health, tuple(spare), lookup, notes)


def _speed_notes(candidates: Sequence[Instance], model: str | None, measured: dict,
                 inflight: dict[str, int]) -> dict[str, str]:
    """What `fastest` reckoned for each candidate, for --explain."""
    notes = {}
    for instance in candidates:
        cost = selection.expected_seconds(instance, model, measured, inflight)
        speed = selection.measured_speed(instance, model, measured) if model else None
        if cost is None:
            notes[instance.id] = f"never measured{' for ' + model if model else ''}: tried now and then"
        elif speed:
            notes[instance.id] = (f"expected {cost:.2f} s: {speed['tps']:.0f} tok/s, first token"
                                  f" {speed.get('first_token_s') or 0:.2f} s, {inflight.get(instance.id, 0)} in flight")
        else:
            notes[instance.id] = f"expected {cost:.2f} s"
    return notes


def named(instance: Instance, store: Store) -> Decision:
    """The decision for an instance named by the caller: that instance, or BusyError when it is at
    its max_inflight."""
    inflight = store.inflight([instance.id]) if instance.max_inflight is not None else {}
    if not selection.has_room(instance, inflight):
        raise BusyError(f"{instance.id} is busy ({inflight[instance.id]}/{instance.max_inflight} in flight)")
    return Decision([instance], {instance.id: "chosen (named by the caller)"}, (instance,), [instance], {})


def _aged(dropped: dict[str, str], lookup: health_cache.Lookup, reg: Registry) -> dict[str, str]:
    """The screening's reasons; a health verdict says how old it is and how to refresh it, and its
    server words hide the keys configured now (they were scrubbed with those known when stored)."""
    keys: tuple[str, ...] | None = None
    reasons = {}
    for instance_id, reason in dropped.items():
        if reason.startswith("unhealthy") and instance_id in lookup.entries:
            keys = keys_of(reg.instances) if keys is None else keys
            verdict, _, said = reason.partition(": ")
            reason = f"{verdict}: {redact(said, keys)} ({lookup.words(instance_id)})"
        reasons[instance_id] = reason
    return reasons


def apply_strategy(strategy: str, candidates: Sequence[Instance], request: Request, health: dict, data: dict,
                   store: Store, inflight: dict[str, int]) -> list:
    """The picks of `strategy` among `candidates`, moving its shared position on in `store`.
    `data`: the state's latency and positions sections (weighted rewrites them in `store`)."""
    signals = selection.Signals(health, data["latency"], inflight, data.get("metrics", {}))

    def choose(positions: dict, entropy: bytes = b"") -> tuple[list, dict]:
        return selection.choose(strategy, candidates, request.count, request_type=request.request_type,
                                model=request.model, key=request.key, signals=signals, positions=positions,
                                entropy=entropy)

    if request.key is not None or strategy not in selection.STATEFUL:
        return choose(data, os.urandom(4 * request.count))[0]
    if strategy in selection.ROTATING:  # one atomic step of a shared cursor (INCRBY on Redis)
        pool = selection.rotation_pool(strategy, candidates, request.request_type, request.model, health)
        return choose({"cursors": {pool: store.advance(pool, request.count)}})[0]

    def advance(current: dict) -> list:
        picks, updates = choose(current)
        for section, values in updates.items():
            current[section].update(values)
        return picks

    return store.update(advance)


def _holdings(instances: list[Instance], health: dict[str, dict], reasons: dict[str, str],
              keys: tuple[str, ...]) -> list[str]:
    """One line per instance: the models a healthy one holds (none whose name holds a key), else why
    it is out (`reasons`, scrubbed by `_aged`)."""
    lines = []
    for instance in instances:
        entry = health.get(instance.id) or {}
        names = sorted({m["name"] for m in entry.get("models") or () if m.get("name") and not holds(m["name"], keys)})
        held = f"has {', '.join(names)}" if names else "has no models"
        state = held if entry.get("healthy") else reasons.get(instance.id, "not checked")
        lines.append(f"{instance.id} ({instance.url}) {state}")
    return lines


def _fallback(reg: Registry, request: Request, reasons: dict[str, str], warn: Warn, default: Instance) -> Decision:
    """Nothing eligible: the default instance if it answers a probe (not with `strict`), else NoInstanceError."""
    if not request.strict and default.url not in {i.url for i in reg.instances}:
        from ollamactl.core.health import probe as health

        result = health.check([default], timeout=reg.setting("timeout"), keys=keys_of([*reg.instances, default]))[0]
        if result.healthy:
            warn(f"no registered instance is eligible; using the default instance {default.url}")
            reasons[default.id] = "chosen (fallback)"
            return Decision([default] * request.count, reasons, reg.instances + (default,), [default],
                            {default.id: result.to_cache()})
        reasons[default.id] = f"unhealthy: {result.error}"
    raise NoInstanceError("no eligible instance", _why(reasons), reasons)


def _why(reasons: dict[str, str]) -> str:
    return "; ".join(f"{instance_id}: {reason}" for instance_id, reason in reasons.items()) or "nothing registered"
