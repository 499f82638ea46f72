"""The simulated model library: /api/pull with paced progress lines, /api/delete and /api/copy.

A pull downloads the model as the registry serves it (`Simulator.upstream`: the catalogue, or
any model some instance holds, at the current build's digest). Its layers are reported the way
Ollama does (`pulling manifest`, `pulling <12 hex>` with growing `completed`, `verifying sha256
digest`, `writing manifest`, `success`), paced by `SimConfig.pull_speed`; the model appears in
`/api/tags` only once the whole stream has been written, so a cut stream (the `truncated` fault)
or a client that hangs up leaves the instance as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
from typing import Any

from ollamactl.model_names import normalise_model
from ollamactl.sim.config import PULL_UNKNOWN, SimModel
from ollamactl.sim.state import InstanceState
from ollamactl.sim.validation import ApiError, find_model
from ollamactl.sim.wire import Reply, Stream, json_reply

TICK_S = 0.1  # one progress line per tick when the speed is set
MAX_LINES_PER_LAYER = 3000
UNPACED_LINES_PER_LAYER = 8
SMALL_LAYERS = (("template", 1_429), ("license", 7_711), ("params", 96))


def _layers(model: SimModel) -> list[tuple[str, int]]:
    """(hex digest, bytes) of each blob of `model`: the weights, then the small text layers."""
    small = sum(size for _, size in SMALL_LAYERS)
    parts = [("weights", max(1, (model.size or 0) - small)), *SMALL_LAYERS]
    return [(hashlib.sha256(f"{model.digest}/{kind}".encode()).hexdigest(), size) for kind, size in parts]


def pull_lines(model: SimModel, speed: float | None, current: SimModel | None) -> list[dict[str, Any]]:
    """The progress lines of a pull of `model` onto an instance that holds `current` (or nothing)."""
    fresh = current is not None and current.digest == model.digest
    lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    for digest, size in _layers(model):
        head = {"status": f"pulling {digest[:12]}", "digest": f"sha256:{digest}", "total": size}
        if fresh:  # already current: every layer is complete at once
            lines.append({**head, "completed": size})
            continue
        steps = UNPACED_LINES_PER_LAYER if speed is None else math.ceil(size / (speed * TICK_S))
        steps = max(1, min(steps, MAX_LINES_PER_LAYER))
        lines.append(head)  # `completed` is omitted while it is 0, as Ollama does
        lines += [{**head, "completed": size * step // steps} for step in range(1, steps + 1)]
    lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
    if current is not None and not fresh:
        lines.append({"status": "removing any unused layers"})
    return lines


def _requested(body: dict[str, Any]) -> str:
    name = body.get("model") or body.get("name")
    if not name:
        raise ApiError(400, "model is required")
    return name


async def pull_model(state: InstanceState, body: dict[str, Any]) -> Reply | Stream:
    name = _requested(body)
    config = state.config
    interval = TICK_S if config.pull_speed else 0.0
    model = state.upstream(name)
    streamed = body.get("stream") is not False
    if model is None:
        if not streamed:
            raise ApiError(500, PULL_UNKNOWN)
        return Stream([{"status": "pulling manifest"}], {"error": PULL_UNKNOWN}, interval)
    lines = pull_lines(model, config.pull_speed, find_model(config, model.name))

    def delivered() -> None:
        state.install(dataclasses.replace(model))

    if not streamed:
        await asyncio.sleep(interval * len(lines))
        delivered()
        return json_reply(200, {"status": "success"})
    return Stream(lines, {"status": "success"}, interval, delivered)


async def delete_model(state: InstanceState, body: dict[str, Any]) -> Reply:
    name = _requested(body)
    model = find_model(state.config, name)
    if model is None:
        raise ApiError(404, f"model '{name}' not found")
    state.remove(model.name)
    return Reply(200)


async def copy_model(state: InstanceState, body: dict[str, Any]) -> Reply:
    source, destination = body.get("source"), body.get("destination")
    if not source or not destination:
        raise ApiError(400, "source and destination are required")
    model = find_model(state.config, source)
    if model is None:
        raise ApiError(404, f'model "{source}" not found')
    state.install(dataclasses.replace(model, name=normalise_model(destination)))
    return Reply(200)
