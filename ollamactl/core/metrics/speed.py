"""Measuring how fast each instance generates (`ollamactl bench`, `Fleet.bench`), and the registry
weights that follow from it. Never prints.

A measurement is one ordinary generate request sent to one instance (no failover), timed from
sending to its first line, with the speed Ollama itself reports on its last line
(`eval_count` / `eval_duration`) and whether the model had to be loaded first (`load_duration`).
The requests go through `Fleet.stream`, so a lease is held and the result is recorded in the
metrics like any run's (the `fastest` strategy learns from it).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ollamactl.core.settings import NUMBERS

COLD_LOAD_S = 0.5  # load_duration above this: the model was loaded for the request (cold)
DEFAULT_PROMPT = "Write one paragraph about the sea."
DEFAULT_TOKENS = 64


@dataclass(frozen=True)
class Measured:
    """One instance's result: speed (tokens/s, from Ollama's own counts), time to first token,
    whether the model was cold; `error` in words when no run succeeded."""

    id: str
    name: str
    url: str
    model: str
    tokens_per_second: float | None = None
    first_token_s: float | None = None
    cold: bool = False
    runs: int = 0
    error: str | None = None

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "url": self.url, "model": self.model,
                "tokens_per_second": self.tokens_per_second, "first_token_s": self.first_token_s,
                "cold": self.cold, "runs": self.runs, "error": self.error}


@dataclass(frozen=True)
class Run:
    """One request's numbers."""

    tokens_per_second: float | None
    first_token_s: float | None
    cold: bool


def run_of(final: dict, first_output_s: float | None) -> Run:
    """The numbers of one finished generation (its last line, and when its first text came)."""
    from ollamactl.core.metrics import counters

    tokens, seconds = counters.speed(final)
    load = final.get("load_duration")
    cold = isinstance(load, (int, float)) and not isinstance(load, bool) and load / 1e9 >= COLD_LOAD_S
    return Run(tokens / seconds if tokens and seconds else None, first_output_s, cold)


def summary(instance: object, model: str, runs: Sequence[Run], error: str | None) -> Measured:
    """An instance's runs as one result: mean speed, median first token, cold if the first run was."""
    speeds = [r.tokens_per_second for r in runs if r.tokens_per_second]
    firsts = [r.first_token_s for r in runs if r.first_token_s is not None]
    return Measured(instance.id, instance.name, instance.url, model,  # type: ignore[attr-defined]
                    statistics.fmean(speeds) if speeds else None,
                    statistics.median(firsts) if firsts else None,
                    bool(runs) and runs[0].cold, len(runs), None if runs else error)


def ranked(results: Sequence[Measured]) -> list[Measured]:
    """Fastest first; those without a speed last, in the order given."""
    return sorted(results, key=lambda m: -(m.tokens_per_second or 0.0))


def weights(results: Sequence[Measured]) -> dict[str, int]:
    """Registry weights proportional to measured speed, the slowest measured instance at 1:
    {instance id: weight} for the instances measured."""
    speeds = {m.id: m.tokens_per_second for m in results if m.tokens_per_second}
    if not speeds:
        return {}
    bound = NUMBERS["weight"]
    slowest = min(speeds.values())
    return {iid: int(max(bound.low, min(bound.high, round(tps / slowest)))) for iid, tps in speeds.items()}
