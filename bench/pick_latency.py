"""Benchmark: the cost of one `ollamactl pick` call against a bare interpreter, and with a stale cache.

Registers 4 simulated instances (in a child process) in a private registry, then times RUNS calls
of each command, interleaved, and prints medians and ratios:
- `pick` with a fresh health cache (no network I/O): target <= 3x `python -c pass`;
- `pick` with a stale cache (older than health_ttl, within stale_ttl): it answers from the cache
  and starts one background refresh; target <= 1.2x the fresh-cache pick. Before each stale run
  the cache is made stale again, and the refresher it started is waited for after it, outside
  the timing.

    python bench/pick_latency.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _support import ollamactl_command, precompile, simulated

from ollamactl.core import background
from ollamactl.core.fleet import Fleet

SETTINGS = "\n[settings]\nhealth_ttl = 600\nstale_ttl = 3600\n"  # the bench decides what is stale


def timed_ms(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
    return (time.perf_counter() - start) * 1000


def age_cache(fleet: Fleet, seconds: float) -> None:
    now = time.time()

    def change(data: dict) -> None:
        for entry in data["health"].values():
            entry["checked_at"] = now - seconds

    fleet.store.update(change)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    precompile()
    pick = ollamactl_command()
    with tempfile.TemporaryDirectory() as tmp, simulated(*({} for _ in range(4))) as urls:
        config, state_dir = os.path.join(tmp, "instances.toml"), os.path.join(tmp, "state")
        env = dict(os.environ, OLLAMACTL_CONFIG=config, OLLAMACTL_STATE_DIR=state_dir)
        fleet = Fleet(config, state_dir)
        for url in urls:
            fleet.add(url)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write(SETTINGS)
        fleet.refresh()
        rows = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import typer'": [sys.executable, "-c", "import typer"],
            "ollamactl pick": pick + ["pick"],
            "ollamactl pick -m llama3.2 -t chat": pick + ["pick", "-m", "llama3.2", "-t", "chat"],
            "ollamactl pick -s random": pick + ["pick", "-s", "random"],
            "ollamactl pick, stale cache": pick + ["pick"],
            "ollamactl --version (Typer)": pick + ["--version"],
        }
        for command in rows.values():  # warm the page cache and .pyc files
            subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
        samples: dict[str, list[float]] = {label: [] for label in rows}
        for _ in range(args.runs):
            for label, command in rows.items():
                stale = label.endswith("stale cache")
                age_cache(fleet, 1200 if stale else 0)
                samples[label].append(timed_ms(command, env))
                if stale:
                    while background.is_running(state_dir):  # the refresh it started, outside the timing
                        time.sleep(0.01)
        results = {label: statistics.median(values) for label, values in samples.items()}
    base, typer_ms = results["python -c pass"], results["python -c 'import typer'"]
    fresh, stale = results["ollamactl pick"], results["ollamactl pick, stale cache"]
    print(f"median of {args.runs} interleaved runs each of {' '.join(pick)}")
    print(f"{'command':<38} {'ms':>7} {'x pass':>7} {'x import typer':>15}")
    for label, ms in results.items():
        print(f"{label:<38} {ms:7.1f} {ms / base:7.2f} {ms / typer_ms:15.2f}")
    verdict = "meets" if fresh <= 3 * base else "MISSES"
    print(f"target pick <= 3x python -c pass: {verdict} ({fresh / base:.2f}x)")
    verdict = "meets" if stale <= 1.2 * fresh else "MISSES"
    print(f"target stale-cache pick <= 1.2x fresh-cache pick: {verdict} ({stale / fresh:.2f}x)")


if __name__ == "__main__":
    main()
