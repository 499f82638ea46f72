"""The registry as last read, kept in marshal form in the state dir, so most reads skip the TOML parser.

`pick` reads the registry on every call; parsing and checking the TOML file costs more than the
rest of a pick, and grows with the fleet. `load` returns the snapshot when it was made from the
very same file (path, inode, size and modification time in ns) by the same Python, else reads the
file the normal way (`registry.load`, with all its checks) and writes a new snapshot. marshal
(built in) loads a 1,000-instance registry in well under a millisecond, without importing json;
it is stored by columns (one tuple per field), which keeps its checks and the making of the
instances out of Python loops.

Rules that keep it honest:
- a file modified in the last marshal_cache.RACY_S seconds is not snapshotted (an edit in the same
  clock tick could keep size and mtime), so hand edits are always seen;
- a registry holding a stored API key is never snapshotted: keys stay in the 0600 registry only;
- the snapshot is a cache (core/state/marshal_cache.py): anything damaged (its checksum), unreadable or of
  another shape is ignored and rebuilt.
"""

from __future__ import annotations

import os
import sys
from functools import partial

from ollamactl.core.registry import instances as registry
from ollamactl.core.registry.instances import Instance, Registry
from ollamactl.core.state import marshal_cache

SNAPSHOT_NAME = "registry.snapshot"
FORMAT = 3
_FIELDS = len(Instance._fields)
_instance = partial(tuple.__new__, Instance)  # a row of _FIELDS values (checked) as an Instance


def load(path: str, state_dir: str) -> Registry:
    """The registry at `path`: from the snapshot in `state_dir` when it matches the file, else read."""
    try:
        stat = os.stat(path)
    except OSError:
        return registry.load(path)  # missing or unreadable: its own words
    key = (FORMAT, sys.version, path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    snapshot = os.path.join(state_dir, SNAPSHOT_NAME)
    cached = _read(snapshot, key, path)
    if cached is not None:
        return cached
    reg = registry.load(path)
    if marshal_cache.settled(stat.st_mtime) and not any(i.api_key for i in reg.instances):
        columns = tuple(zip(*reg.instances, strict=True)) or ((),) * _FIELDS
        marshal_cache.save(snapshot, key, reg.version, reg.settings, columns)
    return reg


def _read(snapshot: str, key: tuple, path: str) -> Registry | None:
    stored = marshal_cache.load(snapshot, key, 3)
    if stored is None:
        return None
    version, settings, columns = stored
    if type(version) is not int or type(settings) is not dict or not registry.columns_ok(columns):
        return None
    return Registry(path, version, settings, tuple(map(_instance, zip(*columns, strict=True))))
