"""Passive health: the circuit breaker and request latencies that `run`/`embed` feed back.

Three consecutive failures eject an instance for 30 s x the number of times it has been ejected
(capped at 5 minutes); a success closes the breaker again. The rules are pure functions on one
instance's entry; `record` applies them through the state store, `Feedback` is what run/embed call.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from ollamactl.core.errors import OllamactlError
from ollamactl.core.http import (
    BadRequest,
    ConnectFailed,
    ModelNotFound,
    NotOllama,
    OllamaError,
    ServerError,
    Timeout,
    TooLarge,
    Unresponsive,
)
from ollamactl.core.metrics import counters as metrics
from ollamactl.model_names import normalise_model

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.metrics.counters import Sample
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import Store

FAILURE_THRESHOLD = 3
EJECT_BASE_S = 30.0
EJECT_CAP_S = 300.0


def after_success() -> dict[str, Any]:
    return {"failures": 0, "ejections": 0, "ejected_until": 0.0}


def after_failure(entry: dict[str, Any] | None, now: float) -> dict[str, Any]:
    entry = dict(entry or {"failures": 0, "ejections": 0, "ejected_until": 0.0})
    entry["failures"] = entry.get("failures", 0) + 1
    if entry["failures"] >= FAILURE_THRESHOLD:
        entry["ejections"] = entry.get("ejections", 0) + 1
        entry["ejected_until"] = now + min(EJECT_BASE_S * entry["ejections"], EJECT_CAP_S)
        entry["failures"] = 0
    return entry


def record(store: Store, instance_id: str, ok: bool | None, latency_ms: float | None = None,
           now: float | None = None, sample: Sample | None = None) -> None:
    """Record one request's outcome for `instance_id` in the store (`ok` None: not a health signal,
    only counted), and what it served in the metrics, in the same write."""
    moment = time.time() if now is None else now

    def change(data: dict[str, Any]) -> None:
        if ok is not None:
            breaker = data["breaker"]
            breaker[instance_id] = after_success() if ok else after_failure(breaker.get(instance_id), moment)
        if ok and latency_ms is not None:
            data["latency"][instance_id] = metrics.decayed(data["latency"].get(instance_id), latency_ms)
        if sample is not None:
            data["metrics"][instance_id] = metrics.apply(data["metrics"].get(instance_id), sample, moment)

    store.update(change)


def mark_down(store: Store, instance: Instance, why: str) -> None:
    """`instance` stopped answering /api/version while a request waited: cache that as the failed
    health check it is, so routing and the model commands leave it out until a probe finds it back."""
    from ollamactl.core.health.probe import HealthResult, save

    save(store, [HealthResult(id=instance.id, url=instance.url, healthy=False, error=why, checked_at=time.time())])


def forget_model(store: Store, instance_id: str, model: str) -> None:
    """An instance answered 404 for `model`: drop it from that instance's cached model list."""
    wanted = normalise_model(model)

    def change(data: dict[str, Any]) -> None:
        entry = data["health"].get(instance_id)
        if entry and entry.get("models"):
            entry["models"] = [m for m in entry["models"] if normalise_model(m.get("name", "")) != wanted]

    store.update(change)


def error_kind(error: OllamaError, midstream: bool = False) -> str:
    """The outcome metrics.KINDS names `error` by: the status class where there was an answer, else the fault."""
    if midstream:
        return "midstream"
    if isinstance(error, (Timeout, Unresponsive)):  # silent past a deadline, or to liveness checks
        return "timeout"
    if isinstance(error, ConnectFailed):
        return "connect"
    if error.status is not None and 400 <= error.status < 500:
        return "http_4xx"
    if (error.status is not None and error.status >= 500) or isinstance(error, (ServerError, TooLarge,
                                                                                  NotOllama)):
        return "http_5xx"
    return "http_4xx"  # refused as asked: unauthorized, a bad request, a redirect


class Feedback:
    """Passive health and metrics from `run`, `embed` and `exec`: each request's outcome goes to the store.

    The request's own faults (a 400, a model the instance lacks) do not count against the server
    (they are counted in the metrics as http_4xx); a model it lacks is forgotten from its cache entry.
    Feedback never fails a request: the store is a cache.
    """

    def __init__(self, store: Store):
        self.store = store

    def success(self, instance_id: str, latency_ms: float | None = None, sample: Sample | None = None) -> None:
        self.outcome(instance_id, True, latency_ms, sample)

    def failure(self, instance: Instance, error: OllamaError, model: str | None, midstream: bool = False) -> None:
        sample = metrics.Sample(outcome=error_kind(error, midstream), model=model)
        if isinstance(error, ModelNotFound):
            if model:
                with contextlib.suppress(OllamactlError):
                    forget_model(self.store, instance.id, model)
            self.outcome(instance.id, True, sample=sample)  # it answered correctly; it just lacks the model
        elif isinstance(error, BadRequest):
            self.outcome(instance.id, True, sample=sample)
        else:
            if isinstance(error, Unresponsive):  # it failed a health check: say so where routing looks
                with contextlib.suppress(OllamactlError):
                    mark_down(self.store, instance, error.reason)
            self.outcome(instance.id, False, sample=sample)

    def count(self, instance_id: str, sample: Sample) -> None:
        """Count what `instance_id` served without a verdict on its health (exec's command, embed's totals)."""
        self.outcome(instance_id, None, sample=sample)

    def outcome(self, instance_id: str, ok: bool | None, latency_ms: float | None = None,
                sample: Sample | None = None) -> None:
        """Record a success, a failure (or, with `ok` None, neither) of `instance_id`, and `sample`."""
        with contextlib.suppress(OllamactlError):
            record(self.store, instance_id, ok, latency_ms=latency_ms, sample=sample)
