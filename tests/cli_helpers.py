"""Running the Typer app in-process with stdout and stderr kept apart, as a user's terminal would."""

from __future__ import annotations

import inspect

from typer.testing import CliRunner

from ollamactl.cli.app import app


def make_runner() -> CliRunner:
    # Click < 8.2 mixes stderr into stdout unless told not to; 8.2+ (and Typer's own copy) keep them apart.
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


RUNNER = make_runner()


def run(*args: str, input: str | None = None):
    result = RUNNER.invoke(app, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"ollamactl {' '.join(args)} crashed") from result.exception
    return result


def ok(*args: str, input: str | None = None):
    result = run(*args, input=input)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    assert lines[0].startswith("ollamactl: error: "), lines[0]
    return lines[0]


def at_the_end(statement: str) -> str:
    """Python source that runs `statement` once as a CLI process ends, on either route: at interpreter
    exit (Typer's) or right before the `os._exit` of cli.exits.leave (the fast route's), which skips
    the interpreter's exit functions."""
    return ("import atexit, os, sys\n"
            "_done = []\n"
            "def _at_the_end():\n"
            "    if not _done:\n"
            "        _done.append(True)\n"
            f"        {statement}\n"
            "atexit.register(_at_the_end)\n"
            "_real_exit = os._exit\n"
            "os._exit = lambda code: (_at_the_end(), _real_exit(code))\n")


REPORT_MODULES = at_the_end("print(*sorted(sys.modules), file=sys.stderr)")


def written_to_a_terminal(*args: str, columns: int | None = None) -> bytes:
    """Run `ollamactl ARGS` with stdin and stdout on a pseudo-terminal (`columns` wide when given,
    COLUMNS and LINES then unset); everything it wrote there, escape sequences included."""
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    from fcntl import ioctl

    leader, follower = pty.openpty()
    env = dict(os.environ)
    if columns is not None:
        ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = {key: value for key, value in env.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", *args], stdin=follower, stdout=follower,
                               stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process ended and the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks)
