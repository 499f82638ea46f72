"""Running a user's command as a child process for `exec`: signals passed through, status returned.

While the child runs, the signals a user or a supervisor sends to ollamactl (INT, TERM, HUP,
QUIT, USR1, USR2, WINCH) are passed on to it, and ollamactl waits for it to finish: the child
decides how to end. A signal that arrives while the child is being started is delivered as soon
as it exists. Its exit status is returned; a child ended by signal N gives 128 + N, as a shell
reports it. (Signal handlers can only be set in the main thread: called from another thread, the
child gets no forwarded signals.)

The child dies with ollamactl: on Linux it asks for SIGKILL when its parent ends
(PR_SET_PDEATHSIG), so an `exec` that is itself SIGKILLed (its lease then lapses) leaves no
command running unleased. And it can be paused (`Child.pause`) while its lease cannot be held.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ollamactl.core.errors import OllamactlError

PASSED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
                                                   "SIGWINCH") if hasattr(signal, name))


TERMINATING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                    if hasattr(signal, name))


class CommandError(OllamactlError):
    """COMMAND could not be started; exit 127 (not found) or 126 (not executable), as a shell does."""

    def __init__(self, message: str, hint: str, exit_code: int):
        super().__init__(message, hint)
        self.exit_code = exit_code  # type: ignore[assignment]


def run(argv: Sequence[str], env: Mapping[str, str], child: Child | None = None) -> int:
    """Run `argv` with `env`, passing signals through; returns its exit status (128 + N: signal N).
    `child`: to pause and resume it from another thread while it runs."""
    import subprocess

    child = child or Child()
    with _passing_signals(child):
        try:
            process = subprocess.Popen(list(argv), env=dict(env), preexec_fn=_dies_with_parent())
        except FileNotFoundError:
            raise CommandError(f"command not found: {argv[0]!r}", "check its name and PATH", 127) from None
        except PermissionError:
            raise CommandError(f"cannot run {argv[0]!r}: permission denied", "is it executable?", 126) from None
        except OSError as exc:
            raise CommandError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", "check the command", 126) from None
        child.started(process)
        status = process.wait()
    return 128 - status if status < 0 else status


def _dies_with_parent() -> Any:
    """A preexec function that makes the child get SIGKILL when this process ends (Linux), or None.
    It calls only prctl, getppid and kill between fork and exec (the prctl function is looked up
    here, before the fork); a parent that died before prctl ran is caught by its parent id."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Child:
    """The child as the signal handlers and the lease's heartbeat see it. A signal that arrives
    while it is being started (the process may already run, even print, before Popen returns) is
    kept and delivered as soon as it exists, never dropped, and so is a pause. Handlers run in the
    main thread between two bytecodes of the code they interrupt, so `pending` is filled before
    `started` reads it, or the handler sees the process."""

    def __init__(self) -> None:
        self.process: Any = None
        self.pending: list[int] = []
        self.paused = False
        self._lock = threading.RLock()  # a pause comes from the heartbeat's thread (re-entrant: handlers)

    def signal(self, signum: int) -> None:
        if self.process is None:
            self.pending.append(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def pause(self, paused: bool) -> None:
        """Stop the child and what it started (SIGSTOP), or let them go on (SIGCONT): parents are
        stopped first and a second pass catches what they started meanwhile; resumed children first."""
        with self._lock:
            self.paused = paused
            if self.process is None:
                self.pending.append(signal.SIGSTOP if paused else signal.SIGCONT)
                return
            for _ in range(2 if paused else 1):
                tree = _tree(self.process.pid)
                for pid in tree if paused else reversed(tree):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def started(self, process: Any) -> None:
        with self._lock:
            self.process = process
            while self.pending:
                self.signal(self.pending.pop(0))


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents before children (from /proc on Linux; just `pid` elsewhere)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as handle:
                        parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):  # gone meanwhile
                    continue
                children.setdefault(parent, []).append(int(entry))
    tree = [pid]
    for member in tree:  # grows as it goes: breadth first
        tree += children.get(member, [])
    return tree


@contextlib.contextmanager
def _passing_signals(child: Child) -> Iterator[None]:
    """Handlers that hand each PASSED signal to the child (see Child) instead of acting on it; a
    paused child is let go on after a signal that ends it, so that it can end."""

    def forward(signum: int, frame: object) -> None:
        child.signal(signum)
        if child.paused and signum in TERMINATING:
            child.pause(False)

    previous = {}
    try:
        for signum in PASSED if threading.current_thread() is threading.main_thread() else ():
            previous[signum] = signal.signal(signum, forward)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
