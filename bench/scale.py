"""How `pick`, `list` and `health` grow with the registry: 1, 10, 100 and 1,000 instances.

In the honest venv (see _venv.py), against simulated instances that answer at once (one child
process serving every port): `pick` (fresh cache) and `list` are the median of RUNS runs, `health
--json` of 3; each is shown as a ratio to its own 1-instance run.

    python bench/scale.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from _support import simulated
from _venv import honest_venv
from pick_latency import timed_ms, write_fleet

SIZES = (1, 10, 100, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    venv = honest_venv()
    table: dict[str, dict[int, float]] = {"pick": {}, "list": {}, "health --json": {}}
    with tempfile.TemporaryDirectory() as tmp, simulated(*({} for _ in range(max(SIZES)))) as urls:
        for size in SIZES:
            directory = os.path.join(tmp, str(size))
            os.makedirs(directory)
            env = write_fleet(directory, urls[:size])
            stamp = os.stat(env["OLLAMACTL_CONFIG"]).st_mtime - 60  # an old file: pick uses its snapshot
            os.utime(env["OLLAMACTL_CONFIG"], (stamp, stamp))
            for name, runs in (("pick", args.runs), ("list", args.runs), ("health --json", 3)):
                command = [venv.ollamactl, *name.split()]
                codes = (0, 3, 4) if name.startswith("health") else (0,)  # 3, 4: a probe timed out under load
                timed_ms(command, env, codes)  # warm up (and write the registry snapshot)
                table[name][size] = statistics.median(timed_ms(command, env, codes) for _ in range(runs))
    print(f"{venv.ollamactl} (pip install .); median ms, and the ratio to 1 instance\n")
    print(f"{'command':<15}" + "".join(f"{size:>18,}" for size in SIZES))
    for name, row in table.items():
        cells = "".join(f"{row[size]:>10.1f} ({row[size] / row[1]:4.2f}x)" for size in SIZES)
        print(f"{name:<15}{cells}")


if __name__ == "__main__":
    main()
