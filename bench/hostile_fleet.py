"""Benchmark: one hostile instance in the fleet (issue 11, point 3).

1. `pick` with a 100,000-model instance registered and refreshed, against the same fleet without
   it: median of RUNS calls each, and the ratio (target: within 1.5x; before: 2.3-2.9 s vs 0.09 s).
2. `health --timeout 5` against an endless `/api/tags` body: wall time and peak RSS (target: under
   100 MB and ending at the cap or the timeout; before: 1.3 GB).

    python bench/hostile_fleet.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _support import ollamactl_command, precompile, private_registry, register, simulated

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hostile_server import _Server, answer, endless, ollama_like  # noqa: E402

_MEASURED = ("import atexit, resource, sys\n"
             "atexit.register(lambda: sys.stderr.write("
             "f'MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'))\n"
             "from ollamactl.cli.launcher import main\nmain(sys.argv[1:])\n")


def serve(routes: dict) -> _Server:
    server = _Server(routes)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop(server: _Server) -> None:
    server.stopping.set()
    server.shutdown()
    server.server_close()


def median_ms(command: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    precompile()
    pick = ollamactl_command() + ["pick"]
    with private_registry(), simulated({}, {}, {}) as urls:
        register(urls)
        subprocess.run(pick, stdout=subprocess.DEVNULL, check=True)
        normal = median_ms(pick, args.runs)
        huge = serve({**ollama_like(), "/api/tags": answer({"models": [{"name": f"m{i}"} for i in range(100_000)]})})
        try:
            subprocess.run(ollamactl_command() + ["add", huge.url, "--no-check"], stdout=subprocess.DEVNULL, check=True)
            subprocess.run(ollamactl_command() + ["refresh"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            state = Path(os.environ["OLLAMACTL_STATE_DIR"]) / "state.json"
            with_huge = median_ms(pick, args.runs)
        finally:
            stop(huge)
        print(f"pick, 3 instances:                   {normal:7.1f} ms (median of {args.runs})")
        print(f"pick, + one 100,000-model instance:  {with_huge:7.1f} ms; state file {state.stat().st_size} bytes")
        print(f"ratio: {with_huge / normal:.2f}x (target <= 1.5x)")
    with private_registry():
        server = serve({**ollama_like(), "/api/tags": endless()})
        try:
            subprocess.run(ollamactl_command() + ["add", server.url, "--no-check"], stdout=subprocess.DEVNULL,
                           check=True)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", _MEASURED, "health", "--timeout", "5"],
                                    capture_output=True, text=True)
            wall = time.perf_counter() - started
        finally:
            stop(server)
        peak = int(result.stderr.rsplit("MAXRSS ", 1)[1]) / 1024
        print(f"health vs an endless /api/tags body: {wall:.2f} s, peak RSS {peak:.0f} MB (target < 100 MB),"
              f" exit {result.returncode}")


if __name__ == "__main__":
    main()
