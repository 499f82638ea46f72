"""The one exit path: how every command (the Typer app and the fast `pick` parser alike) turns its
outcome into an exit code and at most one line on stderr.

OllamactlError -> its message and hint on one line (its details, such as one line per failed
attempt, indented below), its exit code; Ctrl-C -> 130 without a
traceback; a reader that left stdout (`| head -1`) -> quiet exit 1; stdout that cannot take the
output (a full disk) -> one line, exit 1; a warning that stderr could not take -> exit 1 (the
command's own failing code stays); stdout or stderr closed at the start (`>&-`) -> exit 1 at once,
said on stderr when it is open; stdin closed (`<&-`) -> read as empty, as from /dev/null. Stdlib
only: the fast path uses it.
"""

from __future__ import annotations

import sys

from ollamactl import ExitCode, OllamactlError
from ollamactl.cli import flags, output

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import NoReturn


def interrupted() -> int:
    _silence_stdout_errors()
    output.error("interrupted")
    return int(ExitCode.INTERRUPTED)


def closed_at_start() -> int:
    """stdout or stderr was closed when the process started (`>&-`): exit 1 before doing anything.
    Output would go nowhere (`export >&-` wrote nothing and said 0), and the next file the command
    opens would take the closed descriptor's number: a child's or a library's writes to fd 1 or 2
    would land in it."""
    if sys.stderr is not None:
        closed = "stdout" if sys.stdout is None else "stderr"
        output.error(f"{closed} is closed; give it somewhere to go (>/dev/null to discard it)")
    return int(ExitCode.FAILED)


def stdin_from_devnull() -> None:
    """stdin was closed when the process started (`<&-`): read it as /dev/null, as a prompt, a key
    or a confirmation read from a file that ended; on fd 0 itself, which the next file the command
    opens would otherwise take (and pass on to a child as its stdin)."""
    import os

    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)
    os.set_inheritable(0, True)  # a child's stdin too: os.open's descriptors are not inherited
    sys.stdin = open(0, closefd=False)  # the process's stdin, as Python opens it


def broken_pipe() -> int:
    """The reader of stdout went away: stop quietly, and keep Python from complaining at exit."""
    _silence_stdout_errors()
    return int(ExitCode.FAILED)


def unwritable(error: OSError) -> int:
    """stdout cannot take the output (a full disk, a quota, an I/O error): say so once, exit 1."""
    _silence_stdout_errors()
    output.error(f"cannot write the output ({error.strerror or error}); check where stdout goes")
    return int(ExitCode.FAILED)


def _output_error(error: OSError) -> bool:
    """Whether `error` is one a write of the output fails with (the core turns its own file errors
    into OllamactlErrors, so what reaches `guarded` unnamed is stdout's)."""
    import errno

    return not error.filename and error.errno in (errno.EIO, errno.EFBIG, errno.ENOSPC, errno.EDQUOT)


def failed(error: OllamactlError) -> int:
    """The error line, then each of its details on an indented line of its own."""
    error = error.named(flags.names())
    output.error(error.headline())
    for line in error.details:
        output.message(f"  {line}")
    return int(error.exit_code)


def _silence_stdout_errors() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation too: stdout may have no fd
        pass


def leave(code: int) -> NoReturn:
    """End the process now with `code`: stdout and stderr flushed and a background refresh the
    command put off started (Fleet.start_deferred_refreshes), without the interpreter tearing down every module, which
    costs a short command like `pick` a fifth of its own time. Output that cannot be written at
    this last flush fails the command as it would have failed while writing: a reader that left
    ends it quietly with 1, any other error (a full disk) is said, with 1 (a failing code stays)."""
    import os

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or broken_pipe()
    except OSError as error:
        failure = unwritable(error)
        code = code or failure
    except ValueError:  # stdout already closed: nothing was left to write
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):  # nowhere left to say anything
        pass
    fleet = sys.modules.get("ollamactl.core.fleet")  # a command that made no Fleet put nothing off
    if fleet is not None:
        fleet.Fleet.start_deferred_refreshes()
    os._exit(code)


def guarded(body: Callable[[], int | None]) -> int:
    """Run `body` and map what it raises to an exit code (see the module docstring)."""
    try:
        code = int(body() or 0)
        return code or (int(ExitCode.FAILED) if output.unsaid else 0)
    except OllamactlError as error:
        return failed(error)
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:
        return broken_pipe()
    except OSError as error:
        if not _output_error(error):
            raise
        return unwritable(error)
