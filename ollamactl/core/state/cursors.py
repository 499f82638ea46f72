"""The file store's rotation cursors: one small file of their own, so a pick never rewrites the health cache.

A round-robin (or warm, or least-busy) pick moves its pool's cursor on by one atomic
read-modify-write. Kept in `state.json`, every pick rewrote the whole health cache (~270 kB at
1,000 instances); here it rewrites a few bytes. The discipline is the state file's: the change
happens under an exclusive lock on a separate lock file (`cursors.lock`), so parallel picks never
lose a step (400 picks over 4 instances are exactly 100 each). The data file is rewritten in
place, not replaced: only lock holders read it, and marshal ignores trailing bytes, so a crash
between the write and the truncation leaves a readable file.

The file is a cache: anything unreadable, too large or of another shape counts as no cursors
(each rotation starts again from its first instance), never as an error.
"""

from __future__ import annotations

import marshal
import os

from ollamactl.core.state import atomic_files
from ollamactl.core.state.schema import MAX_POSITION

NAME = "cursors"
LOCK_NAME = "cursors.lock"
MAX_BYTES = 1024 * 1024  # far more pools than anyone has; a larger file is not ours


def _decoded(raw: bytes) -> dict[str, int]:
    """The cursors in `raw`; only str pools with int positions in range survive."""
    if not raw or len(raw) > MAX_BYTES:
        return {}
    try:
        data = marshal.loads(raw)
    except (ValueError, EOFError, TypeError):
        return {}
    if type(data) is not dict:
        return {}
    return {pool: value for pool, value in data.items()
            if type(pool) is str and type(value) is int and abs(value) <= MAX_POSITION}


def advance(state_dir: str, pool: str, count: int) -> int:
    """Move rotation `pool` on by `count` under the lock; returns its position before the move.

    OSError (a directory that cannot be written) and OllamactlError (the lock timed out) are the
    caller's to handle."""
    path = os.path.join(state_dir, NAME)
    with atomic_files.locked(os.path.join(state_dir, LOCK_NAME)):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            raw = os.read(fd, MAX_BYTES + 1)
            cursors = _decoded(raw)
            before = cursors.get(pool, 0)
            after = before + count
            cursors[pool] = after if after <= MAX_POSITION else 0
            data = marshal.dumps(cursors)
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
    return before

