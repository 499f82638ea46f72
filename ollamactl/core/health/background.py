"""One background health refresh at a time: started by `pick` (and run/embed) from a stale cache.

Stale-while-revalidate: a caller answering from a stale cache calls `start`, which takes a
non-blocking `flock` on `refresh.lock` in the state dir and, if it got it, spawns a detached
`python -m ollamactl.core.health.refresher CONFIG STATE_DIR` that inherits the locked file and so holds
the lock until it exits. A caller that finds the lock taken knows a refresh is under way and
starts none: sixteen parallel stale picks start one refresh, not sixteen. The refresher checks
every enabled instance, saving results as they arrive, and exits; it prints nothing (its stdio is
/dev/null) and is in its own session, so a Ctrl-C in the caller's terminal does not reach it.

A command that answers and ends (`pick`) asks for the refresh `at_exit`: it starts once the
answer is out (`start_deferred`, at interpreter exit or called before an `os._exit`), so the
refresher's start-up does not compete with the answer for the CPU.

Stdlib only and cheap to import (os, fcntl): the `pick` fast path may run it. Without `fcntl` or
`posix_spawn` (Windows) `start` returns False and the caller probes in the foreground instead.
"""

from __future__ import annotations

import os
import sys

LOCK_NAME = "refresh.lock"
REFRESHER = "ollamactl.core.health.refresher"


_DEFERRED: list[tuple[str, str]] = []  # (config, state dir) of the refreshes put off until exit


def available() -> bool:
    """Whether a background refresh can run here (it needs `fcntl` and `posix_spawn`: not on Windows)."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return False
    return hasattr(os, "posix_spawn")


def start(config: str, state_dir: str, at_exit: bool = False) -> bool:
    """Make sure a background refresh of the fleet in `config` is running (`at_exit`: will run once
    this process ends); False if none can run here."""
    if not available():  # pragma: no cover - Windows
        return False
    if at_exit:
        if not _DEFERRED:
            import atexit

            atexit.register(start_deferred)
        if (config, state_dir) not in _DEFERRED:
            _DEFERRED.append((config, state_dir))
        return True
    import fcntl

    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # a refresh is under way
        except OSError:
            return False
        os.set_inheritable(fd, True)  # the child holds the lock from here until it exits
        devnull = os.devnull
        os.posix_spawn(sys.executable, [sys.executable, "-m", REFRESHER, config, state_dir], os.environ,
                       file_actions=[(os.POSIX_SPAWN_OPEN, n, devnull, os.O_RDWR, 0) for n in (0, 1, 2)],
                       setsid=True)
        return True
    except (OSError, NotImplementedError):  # NotImplementedError: no setsid for posix_spawn here
        return False
    finally:
        os.close(fd)  # ours only: the lock stays with the child's copy


def start_deferred() -> None:
    """Start the refreshes put off `at_exit`: at interpreter exit, or called by a program that ends
    with `os._exit` (which skips the exit functions) before it does."""
    while _DEFERRED:
        start(*_DEFERRED.pop(0))


def is_running(state_dir: str) -> bool:
    """Whether a background refresh holds the lock now (for tests and benchmarks)."""
    import fcntl

    try:
        fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
