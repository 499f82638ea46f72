"""A cache file in marshal form standing for the files it was made from: loaded if its key matches, saved atomically.

The registry snapshot (core/registry_snapshot.py), the state view (core/state_view.py) and the
pick memo (core/pick_memo.py) are each one such file in the 0700 state dir: a tuple of the key
(what it was made from: a format number, the Python version, the source files' stat) and the
cache's fields. `load` gives the fields when the stored key equals the one asked for, else None
(anything unreadable or of another shape included: a cache is never an error); each cache then
checks the types of its own fields. `save` replaces the file atomically and quietly (a cache never
fails a command). A source file modified in the last RACY_S seconds may not be cached at all: an
edit in the same clock tick could keep its inode, size and mtime (see `settled`).
"""

from __future__ import annotations

import marshal
import time

RACY_S = 2.0


def load(path: str, key: tuple, fields: int) -> tuple | None:
    """The `fields` values stored after `key` in the cache file at `path`, or None when it holds
    another key, another number of fields, or nothing marshal reads."""
    try:
        with open(path, "rb") as handle:
            stored = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if type(stored) is not tuple or len(stored) != fields + 1 or stored[0] != key:
        return None
    return stored[1:]


def save(path: str, key: tuple, *fields: object) -> None:
    """Keep `fields` for `key` in the cache file at `path` (replaced atomically, not durably; its
    directory made private if missing); a failure leaves no cache, never an error."""
    from ollamactl.core import atomic_files

    try:
        atomic_files.atomic_write(path, marshal.dumps((key, *fields)), durable=False)
    except (OSError, ValueError):  # ValueError: unmarshallable
        pass


def settled(mtime: float) -> bool:
    """Whether a source file last modified at `mtime` (seconds) may be cached now."""
    return time.time() - mtime > RACY_S
