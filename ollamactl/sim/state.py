"""One simulated server's state, apart from its sockets: its SimConfig, which models it has loaded
and until when, and the changes requests make to them (load, unload, install, remove).

The request handlers (endpoints, openai_compat, library) work on an InstanceState; the server
module owns the sockets and threads around it. Nothing here knows about HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ollamactl.sim.config import FOREVER, KEEP_ALIVE, SimConfig, SimModel, keep_alive_seconds


class InstanceState:
    """What one instance holds and serves. `upstream(name)` is what a pull of `name` downloads
    (None: no such model), as the simulator running the instance answers it."""

    def __init__(self, config: SimConfig, upstream: Callable[[str], SimModel | None]) -> None:
        self.config = config
        self.upstream = upstream
        self._expiry: dict[str, datetime] = {}

    def mark_loaded(self, name: str, loaded: bool, keep_alive: Any = None) -> None:
        """Record that a model was loaded for `keep_alive` (or unloaded by keep_alive 0), as /api/ps
        will report."""
        others = [other for other in self.config.loaded if other != name]
        self.config = dataclasses.replace(self.config, loaded=others + [name] if loaded else others)
        seconds = keep_alive_seconds(keep_alive)
        self._expiry[name] = FOREVER if seconds is None else datetime.now(timezone.utc) + timedelta(seconds=seconds)

    def expires_at(self, name: str) -> datetime:
        """When the keep-alive timer unloads `name` (models loaded from the start: 5 minutes from now)."""
        return self._expiry.get(name) or datetime.now(timezone.utc) + KEEP_ALIVE

    def running(self) -> list[SimModel]:
        """The loaded models, once those whose keep-alive has run out are unloaded."""
        now = datetime.now(timezone.utc)
        expired = [name for name in self.config.loaded if self.expires_at(name) <= now]
        if expired:
            self.config = dataclasses.replace(self.config, loaded=[n for n in self.config.loaded if n not in expired])
        return [model for model in self.config.models if model.name in self.config.loaded]

    def install(self, model: SimModel) -> None:
        """A pull or copy finished: `model` replaces any model of its name (a new build), else is added."""
        models = list(self.config.models)
        index = next((i for i, m in enumerate(models) if m.name == model.name), None)
        if index is None:
            models.append(model)
        else:
            models[index] = model
        self.config = dataclasses.replace(self.config, models=models)

    def remove(self, name: str) -> None:
        """Delete a model (and unload it)."""
        self.config = dataclasses.replace(self.config, models=[m for m in self.config.models if m.name != name],
                                          loaded=[n for n in self.config.loaded if n != name])
