"""Crash-safe file primitives: private directories, locks on separate files, atomic replace.

The lock is `fcntl.flock` on POSIX (stdlib, cheap enough for `pick`; it interoperates with
filelock's Unix lock on the same file) and filelock elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ollamactl.core.errors import OllamactlError

LOCK_TIMEOUT = 15.0


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) with mode 0700 for every directory we create."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def locked(lock_path: Path, timeout: float = LOCK_TIMEOUT, progress: Callable[[], object] | None = None
           ) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed, never deleted).

    `timeout` is how long to wait without progress: when `progress()` (say, the guarded file's
    inode and mtime) changes while waiting, the holders ahead are getting their work done and the
    wait starts again, so a long queue of quick edits never fails while it moves.
    """
    ensure_private_dir(lock_path.parent)
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import filelock

        try:
            with filelock.FileLock(str(lock_path), timeout=timeout):
                yield
        except filelock.Timeout as exc:
            raise _lock_timeout(lock_path, timeout) from exc
        return
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        seen = progress() if progress is not None else None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if progress is not None and (current := progress()) != seen:
                    seen, deadline = current, now + timeout
                if now >= deadline:
                    raise _lock_timeout(lock_path, timeout) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of `path`, None if absent: changes whenever an atomic write replaces it."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _lock_timeout(lock_path: Path, timeout: float) -> OllamactlError:
    return OllamactlError(
        f"could not lock {lock_path} within {timeout:g} s",
        "another ollamactl process is holding it; retry, and if nothing is running, check that file",
    )


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data`: temp file in the same directory, fsync, rename, fsync the dir.

    A crash at any point leaves either the old file or the new one, never a mix. `durable=False`
    skips the fsyncs (still atomic for other processes) for caches that may be lost on power loss.
    Call it under the lock that guards `path`: temp files of earlier writers that crashed are then
    known to be orphans, and are removed.
    """
    ensure_private_dir(path.parent)
    prefix = f".{path.name}."
    for name in os.listdir(path.parent):
        if name.startswith(prefix) and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.parent / name)
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            if durable:
                os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)  # O_CREAT's mode is filtered by the umask
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
