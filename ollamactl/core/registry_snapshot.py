"""The registry as last read, kept as JSON in the state dir, so most reads skip the TOML parser.

`pick` reads the registry on every call; parsing and checking the TOML file costs more than the
rest of a pick, and grows with the fleet. `load` returns the snapshot when it was made from the
very same file (path, inode, size and modification time in ns), else reads the file the normal
way (`registry.load`, with all its checks) and writes a new snapshot.

Rules that keep it honest:
- a file modified in the last RACY_S seconds is not snapshotted (an edit in the same clock tick
  could keep size and mtime), so hand edits are always seen;
- a registry holding a stored API key is never snapshotted: keys stay in the 0600 registry only;
- the snapshot is a cache: anything unreadable or of another shape is ignored and rebuilt.
"""

from __future__ import annotations

import json
import os
import time

from ollamactl.core import registry
from ollamactl.core.paths import Locations
from ollamactl.core.registry import Instance, Registry

SNAPSHOT_NAME = "registry.snapshot.json"
FORMAT = 1
RACY_S = 2.0


def load(locations: Locations) -> Registry:
    """The registry at `locations.registry`: from the snapshot when it matches the file, else read."""
    path = locations.registry
    try:
        stat = os.stat(path)
    except OSError:
        return registry.load(path)  # missing or unreadable: its own words
    key = [os.fspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns]
    snapshot = os.path.join(locations.state_dir, SNAPSHOT_NAME)
    cached = _read(snapshot, key, path)
    if cached is not None:
        return cached
    reg = registry.load(path)
    if time.time() - stat.st_mtime > RACY_S and not any(i.api_key for i in reg.instances):
        _write(locations, snapshot, key, reg)
    return reg


def _read(snapshot: str, key: list, path: os.PathLike[str]) -> Registry | None:
    try:
        with open(snapshot, "rb") as handle:
            data = json.loads(handle.read())
        if data["format"] != FORMAT or data["key"] != key:
            return None
        instances = tuple(Instance(**fields) for fields in data["instances"])
        return Registry(path, int(data["version"]), dict(data["settings"]), instances)  # type: ignore[arg-type]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(locations: Locations, snapshot: str, key: list, reg: Registry) -> None:
    from ollamactl.core import atomic_files

    data = {"format": FORMAT, "key": key, "version": reg.version, "settings": reg.settings,
            "instances": [i._asdict() for i in reg.instances]}
    try:
        atomic_files.ensure_private_dir(locations.state_dir)
        atomic_files.atomic_write(locations.state_dir / SNAPSHOT_NAME,
                                  json.dumps(data, separators=(",", ":")).encode("utf-8"), durable=False)
    except (OSError, TypeError, ValueError):  # a cache: never fail a command over it
        pass
