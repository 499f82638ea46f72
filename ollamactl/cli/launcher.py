"""The console-script entry point: `pick`, `--version` and ordinary command lines of `list`,
`paths`, `run` ... take Typer-free fast paths, everything else the app.

`ollamactl pick ...` runs in shell loops, and Typer costs far more than the pick itself; the fast
path keeps it near a bare interpreter (the other commands: see cli/fast_route.py). Help and shell
completion always go to Typer. Every path ends in `cli.exits`, so errors, Ctrl-C and broken pipes
give the same codes and words; so does a command started with stdout or stderr closed (exit 1
before anything is done; a closed stdin reads as empty). Ctrl-C during start-up is handled too:
`main` runs every import under the same guard (one line, 130), and an interrupt that lands before
the guard is up (on the way into `main`) reaches the hook this module sets, with the same line and
code. A hook, not a SIGINT handler: the `signal` module would cost `pick` the import of enum.
"""

from __future__ import annotations

import os
import sys

_INTERRUPTED = "ollamactl: error: interrupted\n"


def _interrupted_before_main(kind, value, traceback):  # type: ignore[no-untyped-def]
    if issubclass(kind, KeyboardInterrupt):
        os.write(2, _INTERRUPTED.encode())
        os._exit(130)
    sys.__excepthook__(kind, value, traceback)


sys.excepthook = _interrupted_before_main

# `import httpx` also imports its own command line (httpx._main), which pulls in click, rich and
# pygments whenever they are installed: more than half of httpx's import time, for nothing we use.
# A None entry makes that optional import fail at once, and httpx falls back to a stub `main`. Set
# here, in the program's own entry point: the library leaves its host's modules alone.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        if sys.stdin is None:  # started with `<&-`
            from ollamactl.cli import exits

            exits.stdin_from_devnull()
        if sys.stdout is None or sys.stderr is None:  # started with `>&-` or `2>&-`
            from ollamactl.cli import exits

            code = exits.closed_at_start()
        elif (quick := _quick(args)) is not None:
            from ollamactl.cli import exits

            exits.leave(quick)  # as pick: without tearing down httpx & co (~40 ms after run's last byte)
        else:
            from typer.main import get_command

            from ollamactl.cli.app import app

            get_command(app).main(args=args, prog_name="ollamactl")  # exits through cli.exits
            code = 0
    except KeyboardInterrupt:  # before the exit path was imported
        sys.stderr.write(_INTERRUPTED)
        code = 130
    sys.exit(code)


def _quick(args: list[str]) -> int | None:
    if args[:1] == ["pick"]:
        import gc

        gc.disable()  # a short process that ends in os._exit (exits.leave): collections are pure cost
    from ollamactl.cli.fast_route import main as quick

    return quick(args)
