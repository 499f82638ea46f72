"""What each instance served: request outcomes, time to first token, generation speed, embedding
inputs, and requests per minute, kept in the state's `"metrics"` section. Pure functions; never prints.

There is no daemon, so every `run`, `embed` and `exec` adds what it did to the store it already
writes (the breaker's feedback carries it: no extra write), and any process reads the totals.
Bounded whatever the traffic: counters, a fixed histogram of first-token times, a ring of the last
MINUTES minutes, and per model (at most MAX_MODELS, least recently used dropped) token and time
totals plus decayed averages of speed and first-token time, which the `fastest` strategy reads.

One entry per instance id:
    {"requests": {"ok": int, "connect": int, ...},       # outcome -> count (KINDS are the errors)
     "first_token": {"count": int, "sum": float, "buckets": [int, ...]},   # per BUCKETS, not cumulative
     "models": {model: {"tokens": int, "eval_s": float, "runs": int, "tps": float | None,
                        "first_token_s": float | None, "at": float}},
     "embed_inputs": int,
     "minutes": {"at": int, "ok": [int] * MINUTES, "error": [int] * MINUTES},   # "at": the newest minute
     "since": float}                                      # when counting began (first sample, or a reset)
"""

from __future__ import annotations

import math

from ollamactl.model_names import normalise_model

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import Any
    from typing import NamedTuple as Record
else:  # the state's checks run on `pick`'s path, which does not import typing or dataclasses
    from ollamactl.core.records import Record

OK = "ok"
KINDS = ("connect", "timeout", "http_4xx", "http_5xx", "midstream", "command")  # error outcomes
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # first token, s
MINUTES = 30  # the per-minute ring: `top`'s sparkline and requests per minute
MAX_MODELS = 32  # per instance
DECAY = 0.3  # share of a new sample in a decayed average (these and the breaker's request latencies)
MAX_COUNT = 2**53  # beyond this a counter is corrupt
MAX_NUMBER = 1e15  # beyond this a time or a sum is corrupt


class Sample(Record):
    """What one command learned about one instance: `requests` requests with `outcome` (OK or one
    of KINDS), and where known the model, its first-token time, Ollama's eval_count/eval_duration
    and the embedding inputs served."""

    outcome: str = OK
    model: str | None = None
    first_token_s: float | None = None
    tokens: int | None = None  # eval_count
    eval_s: float | None = None  # eval_duration, in seconds
    inputs: int = 0
    requests: int = 1


def speed(final: dict[str, Any]) -> tuple[int | None, float | None]:
    """(eval_count, eval_duration in s) from a generation's last line, when it holds sane numbers."""
    count, duration = final.get("eval_count"), final.get("eval_duration")
    if not (isinstance(count, int) and _whole(count) and isinstance(duration, (int, float)) and _number(duration)
            and duration > 0):
        return None, None
    return count, duration / 1e9


def apply(entry: dict[str, Any] | None, sample: Sample, now: float) -> dict[str, Any]:
    """`entry` (or a new one) with `sample` counted at `now` (epoch seconds)."""
    entry = entry if entry_ok(entry) else new_entry(now)
    assert entry is not None
    requests = entry["requests"]
    requests[sample.outcome] = requests.get(sample.outcome, 0) + sample.requests
    _count_minute(entry["minutes"], OK if sample.outcome == OK else "error", sample.requests, now)
    entry["embed_inputs"] += sample.inputs
    if sample.first_token_s is not None and _number(sample.first_token_s) and sample.first_token_s >= 0:
        histogram = entry["first_token"]
        histogram["count"] += 1
        histogram["sum"] += sample.first_token_s
        slot = next((n for n, bound in enumerate(BUCKETS) if sample.first_token_s <= bound), len(BUCKETS))
        if slot < len(BUCKETS):
            histogram["buckets"][slot] += 1
    if sample.model and sample.outcome == OK:
        _count_model(entry["models"], normalise_model(sample.model), sample, now)
    return entry


def new_entry(now: float) -> dict[str, Any]:
    return {"requests": {}, "first_token": {"count": 0, "sum": 0.0, "buckets": [0] * len(BUCKETS)},
            "models": {}, "embed_inputs": 0,
            "minutes": {"at": int(now // 60), "ok": [0] * MINUTES, "error": [0] * MINUTES}, "since": now}


def _count_minute(ring: dict[str, Any], side: str, count: int, now: float) -> None:
    minute = int(now // 60)
    _roll(ring, minute)
    if minute == ring["at"]:
        ring[side][-1] += count


def _roll(ring: dict[str, Any], minute: int) -> None:
    """Move the ring on to `minute` (the minutes in between counted nothing); an older minute stays."""
    step = minute - ring["at"]
    if step <= 0:
        return
    for side in (OK, "error"):
        ring[side] = (ring[side] + [0] * min(step, MINUTES))[-MINUTES:]
    ring["at"] = minute


def per_minute(entry: dict[str, Any], now: float) -> tuple[list[int], list[int]]:
    """The last MINUTES minutes' (ok, error) counts, oldest first, the current minute last."""
    ring = {"at": entry["minutes"]["at"], OK: list(entry["minutes"][OK]), "error": list(entry["minutes"]["error"])}
    _roll(ring, int(now // 60))
    return ring[OK], ring["error"]


def _count_model(models: dict[str, Any], name: str, sample: Sample, now: float) -> None:
    model = models.get(name) or {"tokens": 0, "eval_s": 0.0, "runs": 0, "tps": None,
                                         "first_token_s": None, "at": now}
    model["runs"] += 1
    model["at"] = now
    if sample.tokens is not None and sample.eval_s:
        model["tokens"] += sample.tokens
        model["eval_s"] += sample.eval_s
        model["tps"] = decayed(model["tps"], sample.tokens / sample.eval_s)
    if sample.first_token_s is not None and _number(sample.first_token_s):
        model["first_token_s"] = decayed(model["first_token_s"], sample.first_token_s)
    models[name] = model
    if len(models) > MAX_MODELS:
        del models[min(models, key=lambda name: models[name]["at"])]


def decayed(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + DECAY * (sample - previous)


def quantile(buckets: Sequence[int], total: int, q: float) -> float | None:
    """The first-token time below which a share `q` of the `total` counted ones fell, from the
    histogram's `buckets` (linear inside a bucket, as Prometheus's histogram_quantile does); None
    before any."""
    if not total:
        return None
    rank, seen, low = q * total, 0, 0.0
    for bound, count in zip(BUCKETS, buckets, strict=True):
        if count and seen + count >= rank:
            return low + (bound - low) * (rank - seen) / count
        seen, low = seen + count, bound
    return BUCKETS[-1]  # in the open top bucket


# ---------------------------------------------------------------------------------------------
# Checks: the state is untrusted input (a hand edit, a flipped bit, another version)


def entry_ok(entry: Any) -> bool:
    """Whether `entry` has this module's shape with sane values (else it is dropped, as a cache is)."""
    try:
        requests, histogram, models = entry["requests"], entry["first_token"], entry["models"]
        ring = entry["minutes"]
        return (isinstance(requests, dict) and all(key == OK or key in KINDS for key in requests)
                and all(_whole(value) for value in requests.values())
                and _whole(histogram["count"]) and _number(histogram["sum"]) and histogram["sum"] >= 0
                and isinstance(histogram["buckets"], list) and len(histogram["buckets"]) == len(BUCKETS)
                and all(_whole(count) for count in histogram["buckets"])
                and isinstance(models, dict) and len(models) <= MAX_MODELS
                and all(isinstance(name, str) and _model_ok(model) for name, model in models.items())
                and _whole(entry["embed_inputs"]) and _number(entry["since"])
                and _whole(ring["at"]) and all(_ring_ok(ring[side]) for side in (OK, "error")))
    except (KeyError, TypeError):
        return False


def _ring_ok(counts: Any) -> bool:
    return isinstance(counts, list) and len(counts) == MINUTES and all(_whole(count) for count in counts)


def _model_ok(model: Any) -> bool:
    return (isinstance(model, dict) and _whole(model.get("tokens")) and _whole(model.get("runs"))
            and _number(model.get("eval_s")) and _number(model.get("at"))
            and all(model.get(key) is None or (_number(model[key]) and model[key] >= 0)
                    for key in ("tps", "first_token_s")))


def _whole(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) <= MAX_NUMBER)
