"""Write the benchmarks' own output into docs/performance.md, so its tables are what the scripts printed.

The document marks each block it shows with the command that made it:

    <!-- bench: pick_latency.py --runs 60 -->
    ```text
    ... that command's stdout, verbatim ...
    ```
    <!-- /bench -->

This script runs the command of every marked block (or of those whose script is named with
--only), in the order they appear, with this interpreter from the checkout's root, and replaces the
block's text with the command's stdout, preceded by one line saying when and on what it ran (CPU
count and the load average before and after: the ratios only mean something next to it). A
command that fails leaves its block as it was and makes the script exit 1.

    python bench/performance_doc.py [--only pick_latency.py health_scale.py] [--list]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- bench: (?P<command>[^>]+?) -->\n```text\n)(?P<body>.*?)(```\n<!-- /bench -->)", re.S)


def blocks(text: str) -> list[str]:
    """The bench commands the document marks, in order."""
    return [match["command"] for match in BLOCK.finditer(text)]


def replace(text: str, command: str, body: str) -> str:
    """`text` with the block of `command` holding `body` (which ends with a newline)."""
    def swap(match: re.Match[str]) -> str:
        return match.group(1) + body + match.group(4) if match["command"] == command else match.group(0)

    return BLOCK.sub(swap, text)


def machine_line(load_before: float, load_after: float) -> str:
    return (f"# {time.strftime('%Y-%m-%d')}, {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; "
            f"load average {load_before:.2f} before, {load_after:.2f} after\n")


def run(command: str) -> str | None:
    script, *args = shlex.split(command)
    load_before = os.getloadavg()[0]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"bench/performance_doc.py: {command} exited {done.returncode}; its block is unchanged", file=sys.stderr)
        return None
    return machine_line(load_before, os.getloadavg()[0]) + done.stdout.rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="only the blocks of these bench scripts")
    parser.add_argument("--list", action="store_true", help="print the marked commands and stop")
    args = parser.parse_args()
    commands = blocks(DOC.read_text(encoding="utf-8"))
    if args.only:
        unknown = set(args.only) - {command.split()[0] for command in commands}
        if unknown:
            parser.error(f"no block of {DOC.relative_to(ROOT)} runs {', '.join(sorted(unknown))}; "
                         f"marked: {', '.join(commands)}")
        commands = [command for command in commands if command.split()[0] in args.only]
    if args.list:
        print("\n".join(commands))
        return 0
    failed = False
    for command in commands:
        print(f"running bench/{command} ...", file=sys.stderr)
        body = run(command)
        if body is None:
            failed = True
            continue
        text = DOC.read_text(encoding="utf-8")  # re-read: each block is written as soon as it is known
        DOC.write_text(replace(text, command, body), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
