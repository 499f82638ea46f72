"""Where the state (health cache, cursors, breaker, latencies) is kept, behind one small interface.

`Store` is what selection, routing, health and the breaker talk to: `read()` a validated
snapshot, `update(change)` an atomic read-modify-write. `FileStore` keeps it in one JSON file in
the state dir, shared by every process on this machine; a store shared by several machines
(Redis) implements the same two methods.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ollamactl.core import state
from ollamactl.core.errors import OllamactlError

T = TypeVar("T")
Warn = Callable[[str], None]


class Store(Protocol):
    description: str  # where the state is kept, in words (`ollamactl paths`)

    def read(self) -> dict[str, Any]:
        """A snapshot of the state, already validated (see `state.validate`)."""
        ...  # pragma: no cover

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply `change` to the current state atomically (no lost updates between processes); returns its result."""
        ...  # pragma: no cover


def _ignore(message: str) -> None:
    return None


class FileStore:
    """The state as one JSON file: lock-free reads (writes replace it atomically), read-modify-writes
    under a lock on a separate file, held for milliseconds. A corrupt or unreadable file is rebuilt
    with a warning instead of failing the command."""

    def __init__(self, state_dir: Path, warn: Warn = _ignore):
        self.state_dir = state_dir
        self.path = state_dir / "state.json"
        self.lock_path = state_dir / "state.lock"
        self.warn = warn
        self.description = f"file {self.path}"

    def read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return state.empty()
        except OSError as exc:
            self.warn(f"cannot read state file {self.path} ({exc.strerror}); starting from an empty cache")
            return state.empty()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        data, problem = state.validate(data)
        if problem:
            self.warn(f"state file {self.path} {problem}")
        return data

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        from ollamactl.core import atomic_files

        try:
            with atomic_files.locked(self.lock_path):
                data = self.read()
                result = change(data)
                payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
                atomic_files.atomic_write(self.path, payload, durable=False)  # a cache: atomic is enough
        except OSError as exc:
            where = exc.filename or self.path
            raise OllamactlError(f"cannot write the state file in {self.state_dir}: {exc.strerror or exc} ({where})",
                                 "check that directory's permissions, or point OLLAMACTL_STATE_DIR elsewhere") from None
        return result
