"""How `ollamactl health` scales with the fleet: wall time of 1 ... 200 simulated instances.

Every simulated instance answers after 0.1 s (SimConfig.latency); the bigger runs also include one
hung instance, which must cost the probe timeout and not more. Each case runs
`ollamactl health --json --timeout 2` as a subprocess (so interpreter start-up is included, as a
user sees it) against a throwaway registry and state directory, a few times; the median counts.

Targets: 200 instances within 1.5x of one instance; with a hung instance, about the timeout.

    python bench/health_scale.py [--repeat 3] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import precompile

from ollamactl.sim import SimInstance, Simulator

SIZES = (1, 10, 100, 200)
HUNG_SIZES = (100, 200)  # these runs are repeated with one hung instance added
LATENCY = 0.1


def write_registry(path: Path, instances: list[SimInstance]) -> None:
    lines = ["version = 1", ""]
    for number, instance in enumerate(instances, start=1):
        lines += ["[[instances]]", f'id = "sim-{number}"', f'url = "{instance.url}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def run_health(instances: list[SimInstance], timeout: float, workdir: Path) -> tuple[float, list[dict]]:
    config = workdir / "instances.toml"
    state = workdir / "state"
    write_registry(config, instances)
    env = {**os.environ, "OLLAMACTL_CONFIG": str(config), "OLLAMACTL_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "ollamactl", "health", "--json", "--timeout", str(timeout)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout * 10 + 30)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 4):
        raise SystemExit(f"health exited {done.returncode}: {done.stderr.strip()}")
    return wall, json.loads(done.stdout)


def measure(instances: list[SimInstance], timeout: float, repeat: int, workdir: Path) -> tuple[float, list[dict]]:
    walls = []
    rows: list[dict] = []
    for _ in range(repeat):
        wall, rows = run_health(instances, timeout, workdir)
        walls.append(wall)
    return statistics.median(walls), rows


async def _bare_get(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    await reader.read()
    writer.close()


def bare_floor(instances: list[SimInstance]) -> float:
    """The same 3 x N requests from a bare asyncio client in this process: what the simulator costs."""

    async def all_of_them() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_bare_get(i.port, path) for i in instances
                               for path in ("/api/version", "/api/tags", "/api/ps")))
        return time.perf_counter() - started

    return statistics.median(asyncio.run(all_of_them()) for _ in range(3))


def main() -> int:
    precompile()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--timeout", type=float, default=2.0, help="probe deadline passed to health")
    args = parser.parse_args()

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="ollamactl-bench-") as tmp:
        workdir = Path(tmp)
        fleet = [sim.add(name=f"sim-{n}", latency=LATENCY) for n in range(1, max(SIZES) + 1)]
        hung = sim.add(name="hung", fault="hang")
        measure(fleet[:1], args.timeout, 1, workdir)  # warm the page cache and bytecode

        results = []
        for size in SIZES:
            wall, rows = measure(fleet[:size], args.timeout, args.repeat, workdir)
            healthy = sum(r["healthy"] for r in rows)
            results.append((f"{size}", size, wall, healthy, False))
        floors = {size: bare_floor(fleet[:size]) for size in (1, max(SIZES))}
        for size in HUNG_SIZES:
            wall, rows = measure(fleet[:size] + [hung], args.timeout, args.repeat, workdir)
            healthy = sum(r["healthy"] for r in rows)
            results.append((f"{size} + 1 hung", size + 1, wall, healthy, True))

    base = results[0][2]
    print(f"ollamactl health --json --timeout {args.timeout:g}; instances answer after {LATENCY:g} s; "
          f"median of {args.repeat} runs (subprocess wall time, start-up included)\n")
    print(f"{'instances':<14} {'healthy':>9} {'wall s':>8} {'vs 1':>7}  notes")
    ok = True
    for label, total, wall, healthy, with_hung in results:
        ratio = wall / base
        note = ""
        if with_hung:
            over = wall - base - args.timeout + LATENCY  # the hung probe replaces one 0.1 s answer
            note = f"= 1-instance run + timeout {over:+.2f} s"
            ok &= wall <= (base + args.timeout) * 1.15
        elif total == max(SIZES):
            note = "target <= 1.5x: " + ("met" if ratio <= 1.5 else "MISSED")
            ok &= ratio <= 1.5
        print(f"{label:<14} {healthy:>4}/{total:<4} {wall:>8.2f} {ratio:>6.2f}x  {note}")
    print(f"\nreference: the same requests from a bare asyncio client (no httpx, no start-up): "
          f"1 instance {floors[1]:.2f} s, {max(SIZES)} instances {floors[max(SIZES)]:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
