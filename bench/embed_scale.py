"""Does `ollamactl embed` scale with the fleet?

10,000 texts, simulated instances (in a child process) that take 0.02 s per request; the same job
on 1, 2 and 4 instances. Each job is `ollamactl embed --file ... --verbose` as a subprocess; the
speed-ups are printed both for the wall time and for the time the command reports itself (from the
command starting to the last vector written: without interpreter and import start-up, which is the
same for every fleet size). Target: 4 instances >= 3.2x faster than 1.

    python bench/embed_scale.py [--texts 10000] [--latency 0.02] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import tempfile
import time

from _support import ollamactl_command, private_registry, register, simulated

MODEL = "nomic-embed-text"
SIZES = (1, 2, 4)


def job(path: str) -> tuple[float, float, str]:
    """(wall seconds, seconds the command reports, digest of stdout)."""
    started = time.perf_counter()
    result = subprocess.run([*ollamactl_command(), "embed", MODEL, "--file", path, "--verbose"],
                            capture_output=True, env=os.environ.copy())
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"ollamactl embed failed: {result.stderr.decode(errors='replace')}")
    reported = re.search(rb"texts in \d+ batches in ([\d.]+) s", result.stderr)
    return wall, float(reported.group(1)) if reported else wall, hashlib.sha256(result.stdout).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "texts.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(f"document {n}: the quick model answers every question\n" for n in range(args.texts))
        configs = [{"name": f"sim{n}", "latency": args.latency} for n in range(1, max(SIZES) + 1)]
        results: dict[int, tuple[float, float]] = {}
        digests = set()
        with simulated(*configs) as urls:
            for size in SIZES:
                with private_registry():
                    register(urls[:size])
                    job(path)  # warm-up (and the model is "loaded" everywhere)
                    runs = [job(path) for _ in range(args.repeat)]
                digests.update(run[2] for run in runs)
                results[size] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    base_wall, base_reported = results[1]
    print(f"{args.texts} texts, batch size 64, 2 requests in flight per instance, {args.latency} s per request"
          f" (median of {args.repeat})")
    print(f"{'instances':>9}  {'wall s':>7}  {'speed-up':>8}  {'reported s':>10}  {'speed-up':>8}")
    for size in SIZES:
        wall, reported = results[size]
        print(f"{size:>9}  {wall:7.3f}  {base_wall / wall:7.2f}x  {reported:10.3f}  {base_reported / reported:7.2f}x")
    speedup = base_reported / results[4][1]
    print(f"4 instances vs 1 (reported time): {speedup:.2f}x (target >= 3.2x) {'OK' if speedup >= 3.2 else 'BELOW'}")
    print(f"outputs identical across fleet sizes: {'yes' if len(digests) == 1 else 'NO'}")


if __name__ == "__main__":
    main()
