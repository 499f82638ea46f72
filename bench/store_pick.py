"""Benchmark: `ollamactl pick` with the shared Redis store against the state file, one run each.

Starts a throw-away redis-server on loopback, registers 4 instances with a fresh health cache in
each store (so pick does no probing), then times `ollamactl pick` with each store and `python -c
pass` in RUNS interleaved rounds and prints the medians and the ratio. Target: Redis <= 1.5x the
file store.

    python bench/store_pick.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from _support import redis_server, timed_ms
from _venv import honest_venv

SETUP = """
import time
from ollamactl import Fleet
fleet = Fleet()
ids = [fleet.add(f"gpu{n}").id for n in range(1, 5)]
with open(fleet.locations.registry, "a", encoding="utf-8") as handle:  # the cache stays fresh for the whole run
    handle.write("\\n[settings]\\nhealth_ttl = 3600\\nstale_ttl = 7200\\n")
def fill(data):
    for i in ids:
        data["health"][i] = {"url": "http://" + i.rsplit("-", 1)[0] + ":11434", "healthy": True, "error": None,
                             "latency_ms": 5.0, "version": "0.12.6", "loaded": [], "checked_at": time.time(),
                             "models": [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 1}]}
fleet.store.update(fill)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    venv = honest_venv()
    pick = [venv.ollamactl, "pick", "-m", "llama3.2"]
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        envs = {}
        for label, store in (("file", "file"), ("redis", url)):
            envs[label] = dict(os.environ, OLLAMACTL_CONFIG=os.path.join(tmp, label, "instances.toml"),
                               OLLAMACTL_STATE_DIR=os.path.join(tmp, label, "state"), OLLAMACTL_STORE=store)
            subprocess.run([sys.executable, "-c", SETUP], env=envs[label], check=True)
            subprocess.run(pick, stdout=subprocess.DEVNULL, env=envs[label], check=True)  # warm caches
        # the baselines run with the installed command's own interpreter
        rows = {"pass": ([venv.python, "-c", "pass"], envs["file"]),
                **{label: (pick, env) for label, env in envs.items()}}
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.runs):  # interleaved rounds: a change of load touches every row alike
            for name, (command, env) in rows.items():
                samples[name].append(timed_ms(command, env))
    base = statistics.median(samples["pass"])
    results = {label: statistics.median(samples[label]) for label in envs}
    print(f"median of {args.runs} interleaved rounds of each, {' '.join(pick)} among them")
    print(f"{'what':<24} {'ms':>7} {'x python -c pass':>17}")
    for label, ms in (("python -c pass", base), *((f"pick, {label} store", ms) for label, ms in results.items())):
        print(f"{label:<24} {ms:7.1f} {ms / base:17.2f}")
    print(f"the redis store's cost: {results['redis'] - results['file']:.1f} ms a pick")
    ratio = results["redis"] / results["file"]
    print(f"redis / file: {ratio:.2f}x (target <= 1.5x: {'meets' if ratio <= 1.5 else 'MISSES'})")


if __name__ == "__main__":
    main()
