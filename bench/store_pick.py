"""Benchmark: `ollamactl pick` with the shared Redis store against the state file, one run each.

Starts a throw-away redis-server on loopback, registers 4 instances with a fresh health cache in
each store (so pick does no probing), then times `ollamactl pick` with each store and `python -c
pass` in RUNS interleaved rounds (each in its own shuffled order, as _support.interleaved_medians
runs them) and prints the medians and the ratio. Target: Redis <= 1.5x the file store.

    python bench/store_pick.py [--runs 40] [--json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from _support import interleaved_medians, print_ratios, redis_server, start_up_arguments
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
    args = start_up_arguments(__doc__.splitlines()[0])
    venv = honest_venv()
    pick = [venv.ollamactl, "pick", "-m", "llama3.2"]
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        envs = {}
        for label, store in (("file", "file"), ("redis", url)):
            envs[label] = dict(os.environ, OLLAMACTL_CONFIG=os.path.join(tmp, label, "instances.toml"),
                               OLLAMACTL_STATE_DIR=os.path.join(tmp, label, "state"), OLLAMACTL_STORE=store)
            subprocess.run([sys.executable, "-c", SETUP], env=envs[label], check=True)
        # the baseline runs with the installed command's own interpreter
        rows = {"python -c pass": ([venv.python, "-c", "pass"], envs["file"]),
                **{f"pick, {label} store": (pick, env) for label, env in envs.items()}}
        results = interleaved_medians(rows, args.runs, seed=42)
    print(f"median of {args.runs} interleaved rounds (each in its own shuffled order), {' '.join(pick)} among them")
    print_ratios(results)
    file_ms, redis_ms = results["pick, file store"], results["pick, redis store"]
    print(f"the redis store's cost: {redis_ms - file_ms:.1f} ms a pick")
    ratio = redis_ms / file_ms
    print(f"redis / file: {ratio:.2f}x (target <= 1.5x: {'meets' if ratio <= 1.5 else 'MISSES'})")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
