"""The state file's checked contents, kept in marshal form beside it, so most reads skip json and the checks.

`pick` reads the state (health cache, breaker, latencies, leases) on every call; at 1,000
instances the file is ~270 kB of JSON, and parsing and checking it costs more than the rest of
the pick. `FileStore.read` asks `load` first: the view is used when it was made from the very same
file (inode, size and modification time in ns, taken from the open file) by the same Python, and
it passes the state's checks again (`state.validate`, cheap once the file was clean). Otherwise
the file is read the normal way and `save` keeps the result, with the warning its checks gave, so
a broken file is still reported on every read. The view also names the health entries that are
not well formed (`state.CheckedHealth`): a pick does not check 1,000 entries, and their model
lists, again. Equal strings (model names and
digests that every instance lists) are stored once, so loading makes one object for each.

Who makes it: the writer of the state file (`FileStore.update`, under the state lock), keyed by
the new file's stat before it is renamed into place, so the view is there as soon as the file
is; and a reader that found none, but only for a file older than marshal_cache.RACY_S seconds (a
rewrite in the same clock tick could keep inode, size and mtime). The view is a cache in the 0700
state dir (core/state/marshal_cache.py): anything damaged (its checksum), unreadable or of another shape
is ignored and rebuilt.
The state holds no API keys (server words are scrubbed before they are stored).
"""

from __future__ import annotations

import os
import sys

from ollamactl.core.state import marshal_cache
from ollamactl.core.state import schema as state

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

NAME = "state.view"
FORMAT = 1


def key_of(stat: os.stat_result) -> tuple:
    """What a view must have been made from to stand for the state file with this `stat`."""
    return FORMAT, sys.version, stat.st_ino, stat.st_size, stat.st_mtime_ns


def load(state_dir: str, key: tuple) -> tuple[dict, str | None] | None:
    """(the state, the warning its checks gave) from the view made for `key`, else None."""
    stored = marshal_cache.load(os.path.join(state_dir, NAME), key, 3)
    if stored is None:
        return None
    data, problem, malformed = stored
    if not (problem is None or type(problem) is str) or type(malformed) is not frozenset:
        return None
    data, again = state.validate(data)
    if again:
        return None
    data["health"] = health = state.CheckedHealth(data["health"])
    health.malformed = malformed
    return data, problem


def _shared(value: Any, strings: dict[str, str]) -> Any:
    """`value` (lists, dicts, scalars) with each run of equal strings made one object: marshal
    writes a repeated object once and a reference after."""
    if type(value) is str:
        return strings.setdefault(value, value)
    if type(value) is dict:
        return {_shared(key, strings): _shared(item, strings) for key, item in value.items()}
    if type(value) is list:
        return [_shared(item, strings) for item in value]
    return value


def settled(stat: os.stat_result) -> bool:
    """Whether a reader may make the view of a file with this stat (see the module docstring)."""
    return marshal_cache.settled(stat.st_mtime)


def save(state_dir: str, key: tuple, data: dict, problem: str | None) -> None:
    """Keep `data` (checked, as it is in the file with `key`) as the view for `key`."""
    view = _shared(dict(data, health=dict(data["health"])), {})
    malformed = frozenset(state.malformed_entries(data["health"]))
    marshal_cache.save(os.path.join(state_dir, NAME), key, view, problem, malformed)
