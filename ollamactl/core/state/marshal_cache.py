"""A cache file in marshal form standing for the files it was made from: loaded if its key matches, saved atomically.

The registry snapshot (core/registry/snapshot.py), the state view (core/state/view.py) and the
pick memo (core/routing/pick_memo.py) are each one such file in the 0700 state dir: a tuple of the key
(what it was made from: a format number, the Python version, the source files' stat) and the
cache's fields, in marshal form after a CRC-32 of it. `load` gives the fields when the checksum
matches and the stored key equals the one asked for, else None (anything unreadable, too large or
of another shape included: a cache is never an error); each cache then checks the types of its own
fields. The checksum is what keeps a damaged file from being believed: marshal reads a flipped
bit or a NUL as another value (a URL that is not in the registry), or as a length that asks for
gigabytes. It guards against damage, not against someone who can write the 0700 state dir.
`save` replaces the file atomically and quietly (a cache never fails a command). A source file
modified in the last RACY_S seconds may not be cached at all: an edit in the same clock tick
could keep its inode, size and mtime (see `settled`).
"""

from __future__ import annotations

import marshal
import os
import stat
import time
import zlib  # ~0.4 ms to import; crc32 of a 300 KB view takes 0.2 ms, of a pick memo 1 µs

RACY_S = 2.0
MAX_BYTES = 64 * 1024 * 1024  # a 1,000-instance state view takes about 300 KB
_SUM = 4


def load(path: str, key: tuple, fields: int) -> tuple | None:
    """The `fields` values stored after `key` in the cache file at `path`, or None when it is not a
    regular file of at most MAX_BYTES with a matching checksum, or holds another key, another
    number of fields, or nothing marshal reads."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in its place opens without waiting
    except OSError:
        return None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_BYTES:
            return None
        raw = os.read(fd, status.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    stored = unpack(raw)
    if type(stored) is not tuple or len(stored) != fields + 1 or stored[0] != key:
        return None
    return stored[1:]


def save(path: str, key: tuple, *fields: object) -> None:
    """Keep `fields` for `key` in the cache file at `path` (replaced atomically, not durably; its
    directory made private if missing); a failure leaves no cache, never an error."""
    from ollamactl.core.state import atomic_files

    try:
        atomic_files.atomic_write(path, pack((key, *fields)), durable=False)
    except (OSError, ValueError):  # ValueError: unmarshallable
        pass


def pack(stored: tuple) -> bytes:
    """A cache file's content: the checksum, then `stored` in marshal form."""
    payload = marshal.dumps(stored)
    return zlib.crc32(payload).to_bytes(_SUM, "big") + payload


def unpack(raw: bytes) -> object:
    """What `pack` was given, or None when the checksum does not match or marshal cannot read it."""
    payload = raw[_SUM:]
    if raw[:_SUM] != zlib.crc32(payload).to_bytes(_SUM, "big"):
        return None
    try:
        return marshal.loads(payload)
    except (ValueError, EOFError, TypeError, MemoryError):  # a checksum collision: still never an error
        return None


def settled(mtime: float) -> bool:
    """Whether a source file last modified at `mtime` (seconds) may be cached now."""
    return time.time() - mtime > RACY_S
