"""Where the state (health cache, cursors, breaker, latencies, leases) is kept, behind one interface.

`Store` is what selection, routing, health, the breaker and leases talk to: `read()` a validated
snapshot, `update(change)` an atomic read-modify-write, and the few operations a shared store does
natively: `advance` a rotation, count/take/renew/release leases, wait in a FIFO line. `FileStore`
keeps it in one JSON file in the state dir, shared by every process on this machine, except the
rotation cursors, which have a small file of their own (core/state/cursors.py) so that a pick does not
rewrite the health cache; `redis_store.RedisStore` shares it all between machines.

Leases and waiters carry an expiry: a holder renews its own (a heartbeat) and one that died
without releasing stops counting once it has passed. A lease that lapsed is taken again only
through the capacity check (`renew` with the instance's limit), and a lease on a limited instance
that could not be recorded is an error, never a lease.
"""

from __future__ import annotations

import os
import time

from ollamactl.core.errors import OllamactlError
from ollamactl.core.paths import STATE_NAME
from ollamactl.core.state import schema as state

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Sequence
    from typing import Any, Protocol, TypeVar

    T = TypeVar("T")
    Warn = Callable[[str], None]
else:
    Protocol = object  # the interface is for the type checker: `pick` does not import typing

REFUSED, TAKEN, KEPT = 0, 1, 2  # what `renew` did: refused (the instance is full), taken again, extended


class Store(Protocol):
    description: str  # where the state is kept, in words (`ollamactl paths`)

    def read(self) -> dict[str, Any]:
        """A snapshot of the state, already validated (see `state.validate`)."""
        ...  # pragma: no cover

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply `change` to the current state atomically (no lost updates between processes); returns its result."""
        ...  # pragma: no cover

    def advance(self, pool: str, count: int) -> int:
        """Move rotation `pool` on by `count` atomically; returns its position before the move."""
        ...  # pragma: no cover

    def inflight(self, instance_ids: Sequence[str], state: dict[str, Any] | None = None) -> dict[str, int]:
        """Live leases per instance id. `state`: a `read()` just made, which a store that keeps the
        leases in it counts from instead of reading again."""
        ...  # pragma: no cover

    def acquire(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> bool:
        """Take lease `holder` on `instance_id` for `ttl` s if it has fewer than `limit` live ones (None: no limit)."""
        ...  # pragma: no cover

    def renew(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> int:
        """Extend a lease to `ttl` s from now (KEPT); one that had lapsed is taken again as `acquire`
        takes it (TAKEN), or not when the instance is at `limit` (REFUSED)."""
        ...  # pragma: no cover

    def release(self, instance_id: str, holder: str) -> None:
        ...  # pragma: no cover

    def queue(self, pool: str, ticket: str, ttl: float) -> int:
        """Join (or stay in, for `ttl` s more) FIFO line `pool`; returns how many live waiters are ahead."""
        ...  # pragma: no cover

    def waiting(self, pool: str) -> int:
        """How many live waiters FIFO line `pool` holds (without joining it)."""
        ...  # pragma: no cover

    def leave(self, pool: str, ticket: str) -> None:
        ...  # pragma: no cover


def _ignore(message: str) -> None:
    return None


class FileStore:
    """The state as one JSON file: lock-free reads (writes replace it atomically), read-modify-writes
    under a lock on a separate file, held for milliseconds. The file is a cache: one that is corrupt,
    too large or out of range is rebuilt with a warning, and a directory that cannot be written
    means no caching (one warning), never a failed command."""

    def __init__(self, state_dir: str | os.PathLike[str], warn: Warn = _ignore):
        self.state_dir = os.fspath(state_dir)
        self.path = os.path.join(self.state_dir, STATE_NAME)
        self.lock_path = os.path.join(self.state_dir, "state.lock")
        self._warn = warn
        self._said: set[str] = set()
        self._broken = False
        self.description = f"file {self.path}"

    def warn(self, message: str) -> None:
        """Each warning once per store: a command reads the state more than once."""
        if message not in self._said:
            self._said.add(message)
            self._warn(message)

    @property
    def warned(self) -> bool:
        """Whether this store has said anything (a broken state file, an unusable state dir)."""
        return bool(self._said)

    def read(self) -> dict[str, Any]:
        """The state: from its view (core/state/view.py) while the file is unchanged, else parsed and checked."""
        from ollamactl.core.state import view as state_view

        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                key = state_view.key_of(stat)
                viewed = state_view.load(self.state_dir, key)
                if viewed is not None:
                    data, problem = viewed
                    if problem:
                        self.warn(f"state file {self.path} {problem}")
                    return data
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
        import json

        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            data = None  # type: ignore[assignment]  # state.validate takes anything and says what it was
        data, problem = state.validate(data)
        if problem:
            self.warn(f"state file {self.path} {problem}")
        if state_view.settled(stat):
            state_view.save(self.state_dir, key, data, problem)
        return data

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        return self._update(change)[0]

    def _update(self, change: Callable[[dict[str, Any]], T]) -> tuple[T, OSError | None]:
        """`update`, and why the change could not be written (None: it was)."""
        import json

        from ollamactl.core.state import atomic_files
        from ollamactl.core.state import view as state_view

        def view(stat: os.stat_result) -> None:  # the new file's view, in place before the file is
            state_view.save(self.state_dir, state_view.key_of(stat), data, None)

        try:
            with atomic_files.locked(self.lock_path):
                data = self.read()
                result = change(data)
                payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
                # a cache: atomic is enough
                atomic_files.atomic_write(self.path, payload, durable=False, before_replace=view)
        except OSError as exc:
            self._unusable(exc)
            return change(self.read()), exc
        return result, None

    def _unusable(self, exc: OSError) -> None:
        """A state dir that cannot be read or written (permissions, a full disk): one warning, no cache."""
        if not self._broken:
            self._broken = True
            self.warn(f"cannot use the state file {exc.filename or self.path}: {exc.strerror or exc}; continuing"
                      " without the cache (check that directory, or point OLLAMACTL_STATE_DIR elsewhere)")

    # -- native operations, as read-modify-writes of the file ----------------------------------------

    def advance(self, pool: str, count: int) -> int:
        from ollamactl.core.state import cursors

        try:
            return cursors.advance(self.state_dir, pool, count)
        except OSError as exc:
            self._unusable(exc)
            return 0

    def inflight(self, instance_ids: Sequence[str], state: dict[str, Any] | None = None) -> dict[str, int]:
        leases, now = (self.read() if state is None else state)["leases"], time.time()
        return {i: sum(1 for until in leases.get(i, {}).values() if until > now) for i in instance_ids}

    def acquire(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> bool:
        return self.renew(instance_id, limit, holder, ttl) != REFUSED

    def renew(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> int:
        def change(data: dict[str, Any]) -> int:
            now = time.time()
            mine = _live(data["leases"], now).setdefault(instance_id, {})
            kept = holder in mine
            if not kept and limit is not None and len(mine) >= limit:
                return REFUSED
            mine[holder] = now + ttl
            return KEPT if kept else TAKEN

        outcome, unwritten = self._update(change)
        if unwritten is not None and limit is not None and outcome != REFUSED:
            raise OllamactlError(
                f"cannot record a lease on {instance_id} ({unwritten.filename or self.path}:"
                f" {unwritten.strerror or unwritten}), so its"
                f" max_inflight {limit} cannot be kept",
                f"make {self.state_dir} writable, or point OLLAMACTL_STATE_DIR at a writable directory"
                " (instances without a max_inflight need no lease)")
        return outcome

    def release(self, instance_id: str, holder: str) -> None:
        def change(data: dict[str, Any]) -> None:
            _live(data["leases"], time.time()).get(instance_id, {}).pop(holder, None)

        self.update(change)

    def queue(self, pool: str, ticket: str, ttl: float) -> int:
        def change(data: dict[str, Any]) -> int:
            now = time.time()
            line = _live(data["queues"], now, lambda entry: entry[1]).setdefault(pool, {})
            arrived = line[ticket][0] if ticket in line else now
            line[ticket] = [arrived, now + ttl]
            return sum(1 for other, (since, _) in line.items() if (since, other) < (arrived, ticket))

        return self.update(change)

    def waiting(self, pool: str) -> int:
        now = time.time()
        return sum(1 for _, until in self.read()["queues"].get(pool, {}).values() if until > now)

    def leave(self, pool: str, ticket: str) -> None:
        def change(data: dict[str, Any]) -> None:
            _live(data["queues"], time.time(), lambda entry: entry[1]).get(pool, {}).pop(ticket, None)

        self.update(change)


def _live(groups: dict[str, dict[str, Any]], now: float,
          expiry: Callable[[Any], float] = float) -> dict[str, dict[str, Any]]:
    """Drop the expired entries (and emptied groups) of a leases/queues section in place; returns it."""
    for name in list(groups):
        group = groups[name]
        for key in [key for key, value in group.items() if expiry(value) <= now]:
            del group[key]
        if not group:
            del groups[name]
    return groups
