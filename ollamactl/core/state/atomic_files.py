"""Crash-safe file primitives: private directories, locks on separate files, atomic replace.

The lock is `fcntl.flock` on POSIX (stdlib, cheap enough for `pick`; it interoperates with
filelock's Unix lock on the same file) and filelock elsewhere. Paths are str or os.PathLike,
handled with os.path (no pathlib: `pick` writes its cursor through here).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from ollamactl.core.errors import OllamactlError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterator

    AnyPath = str | os.PathLike[str]

LOCK_TIMEOUT = 15.0


def ensure_private_dir(directory: AnyPath) -> None:
    """Create `directory` (and missing parents) with mode 0700 for every directory we create."""
    missing = []
    current = os.path.abspath(directory)
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def locked(lock_path: AnyPath, timeout: float = LOCK_TIMEOUT, progress: Callable[[], object] | None = None
           ) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed, never deleted).

    `timeout` is how long to wait without progress: when `progress()` (say, the guarded file's
    inode and mtime) changes while waiting, the holders ahead are getting their work done and the
    wait starts again, so a long queue of quick edits never fails while it moves.
    """
    ensure_private_dir(os.path.dirname(os.path.abspath(lock_path)))
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


def file_stamp(path: AnyPath) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of `path`, None if absent: changes whenever an atomic write replaces it."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _lock_timeout(lock_path: AnyPath, timeout: float) -> OllamactlError:
    return OllamactlError(
        f"could not lock {lock_path} within {timeout:g} s",
        "another ollamactl process is holding it; retry, and if nothing is running, check that file",
    )


def atomic_write(path: AnyPath, data: bytes, mode: int = 0o600, durable: bool = True,
                 before_replace: Callable[[os.stat_result], object] | None = None) -> None:
    """Replace `path` with `data`: temp file in the same directory, fsync, rename, fsync the dir.

    A crash at any point leaves either the old file or the new one, never a mix. `durable=False`
    skips the fsyncs (still atomic for other processes) for caches that may be lost on power loss.
    `before_replace` gets the new file's stat (inode, size, mtime: what it will have once in
    place) just before the rename, e.g. to file a cache keyed by it.
    Call it under the lock that guards `path`: temp files of earlier writers that crashed are then
    known to be orphans, and are removed.
    """
    directory, name = os.path.split(os.path.abspath(path))
    ensure_private_dir(directory)
    prefix = f".{name}."
    for other in os.listdir(directory):
        if other.startswith(prefix) and other.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, other))
    tmp_name = os.path.join(directory, f"{prefix}{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            if durable:
                os.fsync(tmp.fileno())
            if before_replace is not None:
                before_replace(os.fstat(tmp.fileno()))
        os.chmod(tmp_name, mode)  # O_CREAT's mode is filtered by the umask
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_directory(directory)


def _fsync_directory(directory: AnyPath) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
