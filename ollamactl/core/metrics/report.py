"""The fleet's metrics as objects (`Fleet.metrics()`), as one JSON document, and as the Prometheus
text exposition format (`ollamactl metrics`). Built from the registry, the health cache, the leases
held now and the counters of core/metrics/counters.py; never prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ollamactl.core.metrics import counters as metrics
from ollamactl.core.metrics.counters import BUCKETS, KINDS, OK


@dataclass(frozen=True)
class ModelSpeed:
    """One model on one instance: generation speed (decayed average of recent runs, Ollama's own
    eval_count / eval_duration), first-token time (decayed), and the totals."""

    model: str
    tokens_per_second: float | None
    first_token_s: float | None
    runs: int
    tokens: int
    eval_seconds: float
    last_used: float  # epoch seconds


@dataclass(frozen=True)
class InstanceMetrics:
    """What one registered instance served since `since` (epoch seconds; None: nothing yet)."""

    id: str
    name: str
    url: str
    enabled: bool
    up: bool | None  # the last health check's verdict; None: never checked
    probe_latency_s: float | None
    inflight: int
    max_inflight: int | None
    requests: dict[str, int]  # "ok" and each error kind -> count
    first_token_count: int = 0
    first_token_sum: float = 0.0
    first_token_buckets: tuple[int, ...] = (0,) * len(BUCKETS)  # per bucket of metrics.BUCKETS, not cumulative
    models: tuple[ModelSpeed, ...] = ()
    embed_inputs: int = 0
    per_minute_ok: tuple[int, ...] = ()  # the last metrics.MINUTES minutes, oldest first
    per_minute_error: tuple[int, ...] = ()
    since: float | None = None

    @property
    def errors(self) -> int:
        return sum(count for kind, count in self.requests.items() if kind != OK)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def first_token_quantile(self, q: float) -> float | None:
        return metrics.quantile(self.first_token_buckets, self.first_token_count, q)

    def public(self) -> dict[str, Any]:
        """The JSON form (`metrics --json`): strict JSON, no key value."""
        return {
            "id": self.id, "name": self.name, "url": self.url, "enabled": self.enabled, "up": self.up,
            "probe_latency_seconds": self.probe_latency_s, "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "requests": {OK: self.requests.get(OK, 0), "error": {kind: self.requests.get(kind, 0) for kind in KINDS}},
            "first_token_seconds": {"count": self.first_token_count, "sum": self.first_token_sum,
                                    "buckets": dict(zip(_bounds(), _cumulative(self.first_token_buckets,
                                                                               self.first_token_count), strict=True)),
                                    "p50": self.first_token_quantile(0.5), "p95": self.first_token_quantile(0.95)},
            "models": {speed.model: {"tokens_per_second": speed.tokens_per_second, "first_token_seconds":
                                     speed.first_token_s, "runs": speed.runs, "tokens": speed.tokens,
                                     "eval_seconds": speed.eval_seconds} for speed in self.models},
            "embed_inputs": self.embed_inputs,
            "per_minute": {OK: list(self.per_minute_ok), "error": list(self.per_minute_error)},
            "since": self.since,
        }


def build(instance: Any, entry: dict[str, Any] | None, health: dict[str, Any] | None, inflight: int,
          now: float) -> InstanceMetrics:
    """One instance's metrics from its registry entry, its metrics entry, its health cache entry."""
    up = health.get("healthy") if isinstance(health, dict) else None
    latency = health.get("latency_ms") if isinstance(health, dict) else None
    common = {"id": instance.id, "name": instance.name, "url": instance.url, "enabled": instance.enabled,
              "up": up if isinstance(up, bool) else None,
              "probe_latency_s": latency / 1000.0 if isinstance(latency, (int, float)) and math.isfinite(latency)
              else None, "inflight": inflight, "max_inflight": instance.max_inflight}
    if not entry or not metrics.entry_ok(entry):
        return InstanceMetrics(**common, requests={})
    ok, errors = metrics.per_minute(entry, now)
    histogram = entry["first_token"]
    models = tuple(ModelSpeed(name, speed["tps"], speed["first_token_s"], speed["runs"], speed["tokens"],
                              speed["eval_s"], speed["at"])
                   for name, speed in sorted(entry["models"].items()))
    return InstanceMetrics(**common, requests=dict(entry["requests"]), first_token_count=histogram["count"],
                           first_token_sum=histogram["sum"], first_token_buckets=tuple(histogram["buckets"]),
                           models=models, embed_inputs=entry["embed_inputs"], per_minute_ok=tuple(ok),
                           per_minute_error=tuple(errors), since=entry["since"])


def _bounds() -> list[str]:
    return [*(_number(bound) for bound in BUCKETS), "+Inf"]


def _cumulative(buckets: tuple[int, ...], count: int) -> list[int]:
    """Prometheus's cumulative bucket counts (le), the +Inf bucket being the count."""
    running, out = 0, []
    for value in buckets:
        running += value
        out.append(running)
    return [*out, count]


# ---------------------------------------------------------------------------------------------
# The Prometheus text exposition format (version 0.0.4)

_FAMILIES = (
    ("ollamactl_up", "gauge", "Whether the instance answered its last health check (1) or not (0)."),
    ("ollamactl_requests_total", "counter",
     "Requests ollamactl sent to the instance (run, embed, exec), by outcome; errors by kind."),
    ("ollamactl_inflight", "gauge", "Leases held on the instance now (exec, run, embed)."),
    ("ollamactl_max_inflight", "gauge", "The instance's max_inflight (leases at once); absent when unlimited."),
    ("ollamactl_probe_latency_seconds", "gauge", "The last health probe's answer time."),
    ("ollamactl_first_token_seconds", "histogram", "Time from sending a generation to its first line."),
    ("ollamactl_tokens_per_second", "gauge",
     "Generation speed from Ollama's eval_count/eval_duration, decayed average of recent runs."),
    ("ollamactl_generated_tokens_total", "counter", "Tokens generated (eval_count), by model."),
    ("ollamactl_embed_inputs_total", "counter", "Texts embedded by the instance."),
)


def exposition(rows: list[InstanceMetrics]) -> str:
    """The Prometheus text format of `rows`, the instance's name as the `instance` label."""
    lines: list[str] = []
    for name, kind, text in _FAMILIES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for row in rows:
            lines += _samples(name, row)
    return "\n".join(lines) + "\n"


def _samples(family: str, row: InstanceMetrics) -> list[str]:
    label = f'instance="{_escaped(row.name)}"'
    if family == "ollamactl_up":
        return [] if row.up is None else [f"{family}{{{label}}} {int(row.up)}"]
    if family == "ollamactl_requests_total":
        return [f'{family}{{{label},outcome="ok"}} {row.requests.get(OK, 0)}'] + [
            f'{family}{{{label},outcome="error",kind="{kind}"}} {row.requests.get(kind, 0)}' for kind in KINDS]
    if family == "ollamactl_inflight":
        return [f"{family}{{{label}}} {row.inflight}"]
    if family == "ollamactl_max_inflight":
        return [] if row.max_inflight is None else [f"{family}{{{label}}} {row.max_inflight}"]
    if family == "ollamactl_probe_latency_seconds":
        return [] if row.probe_latency_s is None else [f"{family}{{{label}}} {_number(row.probe_latency_s)}"]
    if family == "ollamactl_first_token_seconds":
        counts = _cumulative(row.first_token_buckets, row.first_token_count)
        buckets = [f'{family}_bucket{{{label},le="{bound}"}} {count}'
                   for bound, count in zip(_bounds(), counts, strict=True)]
        return [*buckets, f"{family}_sum{{{label}}} {_number(row.first_token_sum)}",
                f"{family}_count{{{label}}} {row.first_token_count}"]
    if family == "ollamactl_tokens_per_second":
        return [f'{family}{{{label},model="{_escaped(speed.model)}"}} {_number(speed.tokens_per_second)}'
                for speed in row.models if speed.tokens_per_second is not None]
    if family == "ollamactl_generated_tokens_total":
        return [f'{family}{{{label},model="{_escaped(speed.model)}"}} {speed.tokens}' for speed in row.models
                if speed.tokens]
    return [f"{family}{{{label}}} {row.embed_inputs}"]


def _escaped(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "NaN"
