"""Benchmark: registry edits under contention (issue 11, point 7).

60 concurrent add/update/remove processes (a third each) on a 45-instance registry while 8 loops
call `pick`; prints how many edits failed, whether the registry ends exactly as asked, the wall
time, and the picks served meanwhile. Target: 0 failed edits, registry exact.

    python bench/registry_contention.py [--instances 45] [--edits 60] [--pick-loops 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from contention import contend  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=45)
    parser.add_argument("--edits", type=int, default=60)
    parser.add_argument("--pick-loops", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = contend(Path(tmp) / "instances.toml", Path(tmp) / "state", args.instances, args.edits,
                          args.pick_loops)
    print(f"edits: {outcome.edits}, failed: {len(outcome.failed)}, registry exact: {outcome.registry_exact},"
          f" wall: {outcome.seconds:.1f} s, picks meanwhile: {outcome.picks}")
    for message in sorted(set(outcome.failed))[:3]:
        print("  failure:", message)


if __name__ == "__main__":
    main()
