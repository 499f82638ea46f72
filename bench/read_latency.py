"""Benchmark: the everyday read commands (`health`, `models`, `ps`) against the bare interpreter.

Timed in a throwaway venv holding a normal `pip install .` of this checkout (see _venv.py; an
editable install is refused), against that venv's own `python -c pass`: 4 simulated instances
(in a child process, so the timed commands have the CPU to themselves as far as one machine
allows), registered and checked once; then rounds of one run of each command, interleaved, in a
shuffled order each round (fixed seed), median of RUNS rounds (>= 30). Stdout is a pipe, as in a
script. `health` probes all four now; `models` answers from the fresh health cache; `ps` asks
every instance's /api/ps. Target: each <= 5x `python -c pass`.

    python bench/read_latency.py [--runs 40]
"""

from __future__ import annotations

import json
import os
import platform

from _support import interleaved_medians, print_ratios, private_registry, register, simulated, start_up_arguments
from _venv import honest_venv

TARGET = 5.0
INSTANCES = 4


def main() -> None:
    args = start_up_arguments(__doc__.splitlines()[0])
    venv = honest_venv()
    with private_registry(), simulated(*({} for _ in range(INSTANCES))) as urls:
        register(urls)
        with open(os.environ["OLLAMACTL_CONFIG"], "a", encoding="utf-8") as handle:
            handle.write("\n[settings]\nhealth_ttl = 3600\n")  # `models` answers from the cache the whole run
        env = dict(os.environ)
        rows = {
            "python -c pass": ([venv.python, "-c", "pass"], env),
            "ollamactl health": ([venv.ollamactl, "health"], env),
            "ollamactl models": ([venv.ollamactl, "models"], env),
            "ollamactl ps": ([venv.ollamactl, "ps"], env),
        }
        results = interleaved_medians(rows, args.runs, seed=28)
    base = results["python -c pass"]
    print(f"{venv.ollamactl} (pip install ., not editable); {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs; {INSTANCES} simulated instances; median of"
          f" {args.runs} interleaved rounds (each in its own shuffled order)\n")
    print_ratios(results)
    print()
    for label, ms in results.items():
        if label != "python -c pass":
            print(f"target {label.split()[1]} <= {TARGET:g}x python -c pass: "
                  f"{'met' if ms / base <= TARGET else 'MISSED'} ({ms / base:.2f}x)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
