"""Instance selection as pure functions: eligibility filters, fallbacks and strategies. No I/O.

`screen` decides which instances may serve a request and why the others may not; `by_capacity`
keeps the best priority tier that has an instance with free capacity (live leases below its
`max_inflight`); `choose` applies a strategy to those and returns the picks plus the strategy's new
persistent position (cursor or weights), which the caller stores through the state store.
"""

from __future__ import annotations

import math

from ollamactl.model_names import normalise_model
from ollamactl.timefmt import clock

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import NamedTuple as Record
else:
    from ollamactl.core.records import Record

STRATEGIES = ("round-robin", "weighted", "least-latency", "least-busy", "random", "warm", "fastest")
STATEFUL = ("round-robin", "weighted", "warm", "least-busy")
ROTATING = ("round-robin", "warm", "least-busy")  # a cursor the store moves on atomically
BACKUP_TIER = 1001  # the tier of `backup` instances: below every numbered one (-1000..1000)
REQUEST_TYPES = ("chat", "embedding")
EXPLORE_SHARE = 0.1  # `fastest`: the share of picks that go to an instance never measured for the model
TYPICAL_TOKENS = 256  # `fastest`: the answer length an expected time is reckoned for


def model_names(entry: dict | None) -> set[str]:
    """Normalised names of the models a cached health entry lists."""
    if not entry:
        return set()
    return {normalise_model(m["name"]) for m in entry.get("models") or () if m.get("name")}


def has_loaded(entry: dict | None, model: str | None) -> bool:
    loaded = (entry or {}).get("loaded") or ()
    if model is None:
        return bool(loaded)
    return normalise_model(model) in {normalise_model(name) for name in loaded}


class Screening:
    """The outcome of the filters: `candidates` in registry order, `dropped` as {id: reason}."""

    def __init__(self) -> None:
        self.candidates: list = []
        self.dropped: dict[str, str] = {}
        self.warnings: list[str] = []
        self.model_missing = False


def screen(instances, request_type: str | None, model: str | None, health: dict, breaker: dict,
           now: float, strict: bool = False) -> Screening:
    """Apply: enabled, type, healthy (per `health`, already fresh), model, then the breaker.

    A model found on no healthy instance is ignored with a warning (unless `strict`, which leaves
    no candidates and sets `model_missing`); when every remaining instance is ejected by the
    breaker, ejection is ignored (panic mode) rather than failing.
    """
    result = Screening()
    healthy = []
    for instance in instances:
        entry = health.get(instance.id)
        if not instance.enabled:
            result.dropped[instance.id] = "disabled"
        elif request_type and not instance.serves(request_type):
            result.dropped[instance.id] = f"wrong type ({instance.type} does not serve {request_type})"
        elif entry is None:
            result.dropped[instance.id] = "unhealthy: not checked"
        elif not entry.get("healthy"):
            result.dropped[instance.id] = f"unhealthy: {entry.get('error') or 'unknown error'}"
        else:
            healthy.append(instance)
    serving = healthy
    if model:
        wanted = normalise_model(model)
        serving = [i for i in healthy if wanted in model_names(health.get(i.id))]
        if healthy and not serving:
            result.model_missing = True
            if strict:
                for instance in healthy:
                    result.dropped[instance.id] = f"no model {wanted}"
                return result
            result.warnings.append(f"model {wanted} is on no healthy instance; picking any eligible instance")
            serving = healthy
        else:
            kept = {i.id for i in serving}
            for instance in healthy:
                if instance.id not in kept:
                    result.dropped[instance.id] = f"no model {wanted}"
    admitted = [i for i in serving if ejected_until(breaker.get(i.id), now) is None]
    if serving and not admitted:
        result.warnings.append("every eligible instance is ejected by the circuit breaker; trying them anyway")
        admitted = serving
    if len(admitted) < len(serving):
        kept = {i.id for i in admitted}
        for instance in serving:
            if instance.id not in kept:
                result.dropped[instance.id] = f"ejected until {clock(breaker[instance.id]['ejected_until'])}"
    result.candidates = admitted
    return result


def tier_name(tier: int) -> str:
    return "backup" if tier == BACKUP_TIER else str(tier)


def has_room(instance, inflight: dict[str, int]) -> bool:
    return instance.max_inflight is None or inflight.get(instance.id, 0) < instance.max_inflight


def by_capacity(candidates: list, inflight: dict[str, int]) -> tuple[list, list, dict[str, str]]:
    """(the best tier's instances with free capacity, the lower tiers' ones for failover, {id: reason}
    for every candidate left out): a tier is used only when every better tier is out or busy."""
    reasons: dict[str, str] = {}
    chosen: list = []
    spare: list = []
    best: int | None = None
    for tier in sorted({i.priority for i in candidates}):
        members = [i for i in candidates if i.priority == tier]
        free = [i for i in members if has_room(i, inflight)]
        roomy = {i.id for i in free}
        for instance in members:
            if instance.id not in roomy:
                reasons[instance.id] = f"busy ({inflight.get(instance.id, 0)}/{instance.max_inflight} in flight)"
            elif best is not None:
                reasons[instance.id] = f"tier {tier_name(tier)}: skipped, tier {tier_name(best)} has capacity"
        if best is not None:
            spare += free
        elif free:
            best, chosen = tier, free
    return chosen, spare, reasons


def ejected_until(entry: dict | None, now: float) -> float | None:
    until = (entry or {}).get("ejected_until") or 0.0
    return until if until > now else None


def pool_key(request_type: str | None, model: str | None, strategy: str) -> str:
    """One rotation per (strategy family, type, model): parallel picks of one pool share it."""
    family = "warm" if strategy == "warm" else "rr"  # least-busy breaks its ties with the rotation
    return f"{family}|{request_type or 'any'}|{normalise_model(model) if model else '*'}"


def round_robin(candidates: Sequence, cursor: int, count: int) -> tuple[list, int]:
    picks = [candidates[(cursor + i) % len(candidates)] for i in range(count)]
    return picks, cursor + count


def least_busy(candidates: Sequence, inflight: dict[str, int], cursor: int, count: int) -> list:
    """The instances with the fewest live leases; ties go round-robin from `cursor` (count picks
    are spread as if each pick added one lease)."""
    load = {i.id: inflight.get(i.id, 0) for i in candidates}
    picks = []
    for step in range(count):
        lowest = min(load.values())
        tied = [i for i in candidates if load[i.id] == lowest]
        pick = tied[(cursor + step) % len(tied)]
        load[pick.id] += 1
        picks.append(pick)
    return picks


def smooth_weighted(candidates: Sequence, currents: dict[str, int], count: int) -> tuple[list, dict[str, int]]:
    """nginx's smooth weighted round-robin: weights 5,1,1 give a a b a c a a, not a a a a a b c."""
    current = {i.id: currents.get(i.id, 0) for i in candidates}
    total = sum(i.weight for i in candidates)
    picks = []
    for _ in range(count):
        for instance in candidates:
            current[instance.id] += instance.weight
        best = max(candidates, key=lambda i: current[i.id])  # first of equals wins: stable
        current[best.id] -= total
        picks.append(best)
    return picks, current


def least_latency(candidates: Sequence, health: dict, latency: dict[str, float], count: int) -> list:
    def cost(instance) -> float:
        recent = latency.get(instance.id)
        if recent is not None:
            return recent
        measured = (health.get(instance.id) or {}).get("latency_ms")
        return measured if measured is not None else math.inf

    return [min(candidates, key=cost)] * count


def measured_speed(instance, model: str | None, measured: dict) -> dict | None:
    """The metrics entry of `instance`'s speed for `model` (tps, first_token_s, ...); with no model
    named, the fastest it was ever measured at; None when never measured."""
    models = (measured.get(instance.id) or {}).get("models") or {}
    if model:
        return models.get(normalise_model(model))
    return max((s for s in models.values() if s.get("tps")), key=lambda s: s["tps"], default=None)


def expected_seconds(instance, model: str | None, measured: dict, inflight: dict[str, int]) -> float | None:
    """`fastest`'s estimate of how long `instance` takes to answer a request for `model`: its
    first-token time plus TYPICAL_TOKENS at its measured speed (decayed averages of recent runs and
    benches), times one more than the leases it holds (a busy server shares its speed); None when
    it was never measured for `model`."""
    speed = measured_speed(instance, model, measured)
    if not speed or not speed.get("tps"):
        return None
    alone = (speed.get("first_token_s") or 0.0) + TYPICAL_TOKENS / speed["tps"]
    return alone * (1 + inflight.get(instance.id, 0))


def fastest(candidates: Sequence, model: str | None, measured: dict, health: dict, latency: dict[str, float],
            inflight: dict[str, int], count: int, entropy: bytes) -> list:
    """The candidates with the lowest `expected_seconds` (each pick counted as one more lease, so a
    burst spreads); a share EXPLORE_SHARE of picks (drawn from `entropy`, 4 bytes a pick) go to
    an instance never measured for `model`, so new and recovered machines get measured. With
    nothing measured, the least latency."""
    load = dict(inflight)
    picks = []
    for step in range(count):
        costs = {i.id: expected_seconds(i, model, measured, load) for i in candidates}
        unmeasured = [i for i in candidates if costs[i.id] is None]
        draw = int.from_bytes(entropy[4 * step:4 * step + 4] or b"\xff\xff\xff\xff", "big")
        if len(unmeasured) == len(candidates):
            pick = least_latency(candidates, health, latency, 1)[0]
        elif unmeasured and draw < EXPLORE_SHARE * 2**32:
            pick = unmeasured[draw % len(unmeasured)]
        else:
            pick = min((i for i in candidates if costs[i.id] is not None), key=lambda i: costs[i.id] or 0.0)
        load[pick.id] = load.get(pick.id, 0) + 1
        picks.append(pick)
    return picks


def random_picks(candidates: Sequence, count: int, entropy: bytes) -> list:
    """Uniform picks from `entropy` (4 bytes per pick, e.g. os.urandom) so tests can fix it."""
    return [
        candidates[int.from_bytes(entropy[4 * i:4 * i + 4], "big") % len(candidates)] for i in range(count)
    ]


def rendezvous(candidates: Sequence, key: str) -> list:
    """Candidates ranked for `key` by weighted rendezvous hashing; losing one moves only its keys."""

    import hashlib

    def score(instance) -> float:
        digest = hashlib.sha256(f"{key}\0{instance.id}".encode()).digest()
        unit = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)  # in (0, 1)
        return -instance.weight / math.log(unit)

    return sorted(candidates, key=score, reverse=True)


class Signals(Record):
    """What the state says about the candidates, for the strategies that read it (None: nothing)."""

    health: dict | None = None  # the cached health entries by instance id (warm, least-latency, fastest)
    latency: dict | None = None  # measured request latency by instance id, ms (least-latency, fastest)
    inflight: dict | None = None  # the live lease count by instance id (least-busy, fastest)
    measured: dict | None = None  # the state's metrics section (fastest)


def choose(strategy: str, candidates: Sequence, count: int, *, request_type: str | None = None,
           model: str | None = None, key: str | None = None, signals: Signals = Signals(),
           positions: dict | None = None, entropy: bytes = b"") -> tuple[list, dict]:
    """Pick `count` instances from the non-empty `candidates`.

    `positions` is the persisted strategy state: {"cursors": {pool: int}, "weights": {pool: {...}}};
    the returned dict holds only the entries to write back (empty for stateless strategies).
    """
    health = signals.health or {}
    positions = positions or {}
    if key is not None:
        ranked = rendezvous(candidates, key)
        return [ranked[i % len(ranked)] for i in range(count)], {}
    if strategy == "random":
        return random_picks(candidates, count, entropy), {}
    if strategy == "least-latency":
        return least_latency(candidates, health, signals.latency or {}, count), {}
    if strategy == "fastest":
        return fastest(candidates, model, signals.measured or {}, health, signals.latency or {},
                       signals.inflight or {}, count, entropy), {}
    pool = rotation_pool(strategy, candidates, request_type, model, health)
    if strategy == "weighted":
        picks, currents = smooth_weighted(candidates, positions.get("weights", {}).get(pool, {}), count)
        return picks, {"weights": {pool: currents}}
    cursor = positions.get("cursors", {}).get(pool, 0)
    if strategy == "least-busy":
        return least_busy(candidates, signals.inflight or {}, cursor, count), {"cursors": {pool: cursor + count}}
    if strategy == "warm":
        candidates = [i for i in candidates if has_loaded(health.get(i.id), model)] or candidates
    picks, cursor = round_robin(candidates, cursor, count)
    return picks, {"cursors": {pool: cursor}}


def rotation_pool(strategy: str, candidates: Sequence, request_type: str | None, model: str | None,
                  health: dict) -> str:
    """The key of the rotation (cursor or weights) a stateful strategy uses for these candidates."""
    pool = pool_key(request_type, model, strategy)
    if strategy == "warm":
        pool += "|warm" if any(has_loaded(health.get(i.id), model) for i in candidates) else "|cold"
    return pool
