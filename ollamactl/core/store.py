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
    under a lock on a separate file, held for milliseconds. The file is a cache: one that is corrupt,
    too large or out of range is rebuilt with a warning, and a directory that cannot be written
    means no caching (one warning), never a failed command."""

    def __init__(self, state_dir: Path, warn: Warn = _ignore):
        self.state_dir = state_dir
        self.path = state_dir / "state.json"
        self.lock_path = state_dir / "state.lock"
        self._warn = warn
        self._said: set[str] = set()
        self._broken = False
        self.description = f"file {self.path}"

    def warn(self, message: str) -> None:
        """Each warning once per store: a command reads the state more than once."""
        if message not in self._said:
            self._said.add(message)
            self._warn(message)

    def read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(state.MAX_BYTES + 1)
        except FileNotFoundError:
            return state.empty()
        except OSError as exc:
            self._unusable(exc)
            return state.empty()
        if len(raw) > state.MAX_BYTES:
            self.warn(f"state file {self.path} is larger than {state.MAX_BYTES // (1024 * 1024)} MB; it is being"
                      " rebuilt (it only holds caches and cursors)")
            return state.empty()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
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
            self._unusable(exc)
            return change(self.read())
        return result

    def _unusable(self, exc: OSError) -> None:
        """A state dir that cannot be read or written (permissions, a full disk): one warning, no cache."""
        if not self._broken:
            self._broken = True
            self.warn(f"cannot use the state file {exc.filename or self.path}: {exc.strerror or exc}; continuing"
                      " without the cache (check that directory, or point OLLAMACTL_STATE_DIR elsewhere)")
