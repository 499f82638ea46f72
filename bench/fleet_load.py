"""Benchmark: a fleet under load, 64 jobs of uneven length through `ollamactl exec`, round-robin vs least-busy.

4 simulated instances; each serves one request at a time (OLLAMA_NUM_PARALLEL=1, modelled by a
lock per instance that the job holds while it works) and takes up to MAX (`max_inflight`: the
rest queue at the server, as Ollama queues them). PARALLEL jobs run at once (like `xargs -P`); a
quarter of them are long. Each job asks its instance for /api/version, then works for its time.
Round-robin sends work by rotation whatever is queued where; least-busy sends it where the
fewest leases are, so it should finish sooner. The strategies alternate for REPEAT rounds; prints
the median totals and their ratio.

    python bench/fleet_load.py [--jobs 64] [--parallel 12] [--max-inflight 6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile

from _support import ollamactl_command, precompile, private_registry, register, simulated, wall_s

LONG, SHORT = 2.0, 0.2  # seconds of work
JOB = """
import fcntl, os, sys, time, urllib.request
with open(os.path.join(sys.argv[1], os.environ["OLLAMACTL_INSTANCE"]), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # the instance works on one request at a time
    urllib.request.urlopen(os.environ["OLLAMA_HOST"] + "/api/version", timeout=10).read()
    time.sleep(float(sys.argv[2]))
"""


def durations(jobs: int) -> list[float]:
    rng = random.Random(16)
    return [rng.choice((LONG, SHORT, SHORT, SHORT)) for _ in range(jobs)]


def run_all(strategy: str, work: list[float], parallel: int, locks: str) -> float:
    command = ollamactl_command() + ["exec", "-s", strategy, "--"]

    def job(seconds: float) -> None:
        subprocess.run(command + [sys.executable, "-c", JOB, locks, str(seconds)], check=True)

    return wall_s(job, work, parallel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=12)
    parser.add_argument("--max-inflight", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    precompile()
    work = durations(args.jobs)
    with simulated(*[{"name": f"sim{n}"} for n in range(4)]) as urls, private_registry(), \
            tempfile.TemporaryDirectory() as locks:
        register(urls)
        from ollamactl.core.fleet import Fleet

        for instance in Fleet().instances():
            Fleet().update(instance.id, max_inflight=args.max_inflight)
        rounds: dict[str, list[float]] = {"round-robin": [], "least-busy": []}
        for _ in range(args.repeat):
            for strategy, seconds in rounds.items():
                seconds.append(run_all(strategy, work, args.parallel, locks))
    print(f"{args.jobs} jobs ({sum(work):.1f} s of work; {work.count(LONG)} long) over 4 instances,"
          f" {args.parallel} at once, max_inflight {args.max_inflight}, one request at a time per instance")
    totals = {strategy: statistics.median(seconds) for strategy, seconds in rounds.items()}
    for strategy, seconds in rounds.items():
        print(f"{strategy:<12} median {totals[strategy]:6.2f} s  (rounds: {', '.join(f'{s:.2f}' for s in seconds)})")
    ratio = totals["least-busy"] / totals["round-robin"]
    print(f"least-busy / round-robin: {ratio:.2f} ({'sooner' if ratio < 1 else 'NOT sooner'})")


if __name__ == "__main__":
    main()
