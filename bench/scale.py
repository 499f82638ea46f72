"""How `pick`, `list` and `health` grow with the registry: 1, 10, 100 and 1,000 instances.

In the honest venv (see _venv.py), against simulated instances that answer at once (one child
process serving every port): `pick` (fresh cache) and `list` are the median of RUNS interleaved
rounds (every size in each round), `health --json` of 3; each is shown as a ratio to its own
1-instance run.

    python bench/scale.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from _support import simulated, timed_ms
from _venv import honest_venv
from pick_latency import write_fleet

SIZES = (1, 10, 100, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    venv = honest_venv()
    table: dict[str, dict[int, float]] = {"pick": {}, "list": {}, "health --json": {}}
    with tempfile.TemporaryDirectory() as tmp, simulated(*({} for _ in range(max(SIZES)))) as urls:
        envs = {}
        for size in SIZES:
            directory = os.path.join(tmp, str(size))
            os.makedirs(directory)
            env = envs[size] = write_fleet(directory, urls[:size])
            stamp = os.stat(env["OLLAMACTL_CONFIG"]).st_mtime - 60  # an old file: pick uses its snapshot
            os.utime(env["OLLAMACTL_CONFIG"], (stamp, stamp))
        quick = [(name, size) for name in ("pick", "list") for size in SIZES]
        samples: dict[tuple[str, int], list[float]] = {key: [] for key in quick}
        for name, size in quick:
            timed_ms([venv.ollamactl, name], envs[size])  # warm up (and write the registry snapshot)
        for _ in range(args.runs):  # interleaved rounds: a load spike hits every size alike
            for name, size in quick:
                samples[name, size].append(timed_ms([venv.ollamactl, name], envs[size]))
        for (name, size), values in samples.items():
            table[name][size] = statistics.median(values)
        command = [venv.ollamactl, "health", "--json"]
        for size in SIZES:
            codes = (0, 3, 4)  # 3, 4: a probe timed out under load
            timed_ms(command, envs[size], codes)
            table["health --json"][size] = statistics.median(timed_ms(command, envs[size], codes) for _ in range(3))
    print(f"{venv.ollamactl} (pip install .); median ms, and the ratio to 1 instance\n")
    print(f"{'command':<15}" + "".join(f"{size:>18,}" for size in SIZES))
    for name, row in table.items():
        cells = "".join(f"{row[size]:>10.1f} ({row[size] / row[1]:4.2f}x)" for size in SIZES)
        print(f"{name:<15}{cells}")


if __name__ == "__main__":
    main()
