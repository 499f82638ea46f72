"""Closed and broken stdout/stderr, after issue 23 (point 5): a closed stdout (`>&-`) crashed 12 of 16
commands with `'NoneType' object has no attribute 'write'`, and `export >&-` exited 0 having written
nothing. Now a command started with stdout or stderr closed does nothing and exits 1, saying why on
stderr when it is open; a stderr that cannot take a message fails the command (exit 1) too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ollamactl.core.fleet import Fleet

# the fast `pick` route, the Typer-free route (list, paths, --version), Typer (export, health, add, run)
COMMANDS = (["pick"], ["pick", "--explain"], ["list"], ["paths"], ["--version"], ["export", "--format", "nginx"],
            ["health"], ["add", "127.0.0.1:8", "--name", "new"], ["run", "llama3.2", "hi"], ["models"])


def started_with(args: list[str], closed: tuple[int, ...], stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    def close() -> None:
        for fd in closed:
            os.close(fd)

    return subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=subprocess.PIPE, stderr=stderr,
                          preexec_fn=close, env=os.environ.copy(), timeout=60, text=True)


@pytest.fixture
def registered(isolated_env):
    Fleet().add("127.0.0.1:9", name="a")  # nothing listens there: some commands would say so on stderr
    return isolated_env["config"]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_stdout_is_exit_1_with_the_reason(registered, args):
    before = registered.read_bytes()
    result = started_with(args, (1,))
    assert result.returncode == 1, result.stderr
    assert result.stderr == "ollamactl: error: stdout is closed; give it somewhere to go (>/dev/null to discard it)\n"
    assert registered.read_bytes() == before  # nothing was done (`add` did not register)


@pytest.mark.parametrize("args", [["pick"], ["export", "--format", "nginx"], ["add", "127.0.0.1:8"]], ids=" ".join)
def test_a_closed_stderr_is_exit_1_and_nothing_done(registered, args):
    before = registered.read_bytes()
    result = started_with(args, (2,), stderr=None)
    assert result.returncode == 1 and result.stdout == ""
    assert registered.read_bytes() == before


def test_a_stderr_that_cannot_take_the_warning_fails_the_command(registered):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader of stderr is gone
    try:
        result = subprocess.run([sys.executable, "-m", "ollamactl", "export", "--format", "nginx"],
                                stdout=subprocess.PIPE, stderr=write_end, env=os.environ.copy(), timeout=60)
    finally:
        os.close(write_end)
    assert b"upstream" in result.stdout  # the export itself was written ...
    assert result.returncode == 1  # ... but its warning (an unhealthy instance in the pool) was lost
    with open(os.devnull, "w") as sink:
        fine = subprocess.run([sys.executable, "-m", "ollamactl", "export", "--format", "nginx"],
                              stdout=subprocess.PIPE, stderr=sink, env=os.environ.copy(), timeout=60)
    assert fine.returncode == 0


def test_a_full_stdout_is_exit_1_in_words(registered):
    with open("/dev/full", "w") as full:
        for args in (["export", "--format", "nginx"], ["list"], ["paths", "--json"]):
            result = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=full, stderr=subprocess.PIPE,
                                    env=os.environ.copy(), timeout=60, text=True)
            assert result.returncode == 1, (args, result.stderr)
            assert "cannot write the output (No space left on device)" in result.stderr, (args, result.stderr)


# --version on either route (`-V x`: Typer's eager option), help, and the help a bare `ollamactl` prints
PRINTED_BEFORE_ANY_COMMAND = (["--version"], ["-V", "x"], ["--help"], ["pick", "--help"], [])


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "PYTHONUNBUFFERED"])
@pytest.mark.parametrize("args", PRINTED_BEFORE_ANY_COMMAND, ids=" ".join)
def test_version_and_help_that_cannot_be_written_are_said_not_a_traceback(registered, args, unbuffered):
    """Before, `--version >/dev/full` and `--help >/dev/full` ended in a traceback and exit 120 (the
    version under PYTHONUNBUFFERED on the fast route too, and `--version | head -0` likewise)."""
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=full, stderr=subprocess.PIPE,
                                env=env, timeout=60, text=True)
    assert (result.returncode, result.stderr) == (
        1, "ollamactl: error: cannot write the output (No space left on device); check where stdout goes\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before anything was written (`| head -0`)
    try:
        result = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=write_end, stderr=subprocess.PIPE,
                                env=env, timeout=60, text=True)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (1, "")


STDIN_READERS = [
    (["run", "llama3.2"], "the prompt is empty; give it as arguments or on stdin"),
    (["embed", "nomic-embed-text"], "no texts to embed"),
    (["add", "127.0.0.1:8", "--api-key-stdin"], "no API key on stdin"),
    (["remove", "a"], "refusing to remove without confirmation: stdin is not a terminal; pass --yes"),
    (["metrics", "--reset"], "refusing to clear the metrics without confirmation: stdin is not a terminal"),
]


@pytest.mark.parametrize("args, words", STDIN_READERS, ids=[" ".join(args) for args, _ in STDIN_READERS])
def test_a_closed_stdin_reads_as_empty(registered, args, words):
    """`<&-` is read as `</dev/null`: before, each of these ended in a traceback (`'NoneType' object
    has no attribute 'isatty'`, or `'buffer'`)."""
    before = registered.read_bytes()
    result = started_with(args, (0,))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.startswith(f"ollamactl: error: {words}"), result.stderr
    assert registered.read_bytes() == before


def test_exec_gives_its_command_dev_null_for_a_closed_stdin(isolated_env):
    """The child's stdin is /dev/null (before the fix: none at all, or whatever file took fd 0)."""
    child = "import os; print(os.path.samestat(os.fstat(0), os.stat(os.devnull)))"
    result = started_with(["exec", "--", sys.executable, "-c", child], (0,))
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr
