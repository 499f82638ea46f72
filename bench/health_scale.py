"""How `ollamactl health` scales with the fleet: wall time of 1 ... 200 simulated instances.

Every simulated instance answers after 0.1 s (SimConfig.latency); the bigger runs also include one
hung instance, which must cost the probe timeout and not more. Each case runs
`ollamactl health --json --timeout 2` as a subprocess of the honest venv (a normal `pip install .`,
see _venv.py; interpreter start-up is included, as a user sees it) against a throwaway registry
and state directory, in rounds that run every case once (so a change of load touches all cases
alike); the median counts.

Then the floor: a bare asyncio prober (bare_prober.py: no httpx, no Typer, stdlib only; the same
three requests per instance, three connections at once, parsed as JSON) runs as its own process
against the same 200 instances, in turns with `ollamactl health --json` (so both see the same load on a shared
machine), and their median wall and CPU times are compared.

Targets: 200 instances within 1.5x of one instance; with a hung instance, about the timeout;
ollamactl within 1.5x of the prober's wall time and 2x its CPU time.

    python bench/health_scale.py [--repeat 5] [--pairs 7] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _venv import Venv, honest_venv

from ollamactl.sim import SimInstance, Simulator

SIZES = (1, 10, 100, 200)
HUNG_SIZES = (100, 200)  # these runs are repeated with one hung instance added
LATENCY = 0.1
PROBER = str(Path(__file__).with_name("bare_prober.py"))  # the floor, a script importing only the stdlib


def write_registry(path: Path, instances: list[SimInstance]) -> None:
    lines = ["version = 1", ""]
    for number, instance in enumerate(instances, start=1):
        lines += ["[[instances]]", f'id = "sim-{number}"', f'url = "{instance.url}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def timed(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one process run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3, 4):  # 3, 4: some or all unhealthy, which the table shows
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def run_health(venv: Venv, instances: list[SimInstance], timeout: float, workdir: Path) -> tuple[float, float, list]:
    config = workdir / "instances.toml"
    state = workdir / "state"
    write_registry(config, instances)
    env = {**os.environ, "OLLAMACTL_CONFIG": str(config), "OLLAMACTL_STATE_DIR": str(state)}
    command = [venv.ollamactl, "health", "--json", "--timeout", str(timeout)]
    wall, cpu, out = timed(command, env, timeout * 10 + 30)
    return wall, cpu, json.loads(out)


def measure(venv: Venv, cases: list[list[SimInstance]], timeout: float, repeat: int,
            workdir: Path) -> list[tuple[float, int]]:
    """(median wall s, instances healthy in the last run) per case; `repeat` rounds, each running
    every case once, so a change of load on a shared machine touches every case alike."""
    walls: list[list[float]] = [[] for _ in cases]
    healthy = [0] * len(cases)
    for _ in range(repeat):
        for number, instances in enumerate(cases):
            wall, _, rows = run_health(venv, instances, timeout, workdir)
            walls[number].append(wall)
            healthy[number] = sum(r["healthy"] for r in rows)
    return [(statistics.median(w), h) for w, h in zip(walls, healthy, strict=True)]


def against_prober(venv: Venv, instances: list[SimInstance], timeout: float, pairs: int,
                   workdir: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(median wall s, median CPU s) of ollamactl and the bare prober, each with 1 and with all
    `instances`, by (side, size); `pairs` turns, each running the four once."""
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(pairs):
        for size in (1, len(instances)):
            wall, cpu, rows = run_health(venv, instances[:size], timeout, workdir)
            if sum(r["healthy"] for r in rows) != size:
                raise SystemExit("ollamactl did not see every instance healthy: the comparison would be unfair")
            runs.setdefault(("ollamactl", size), []).append((wall, cpu))
            wall, cpu, out = timed([venv.python, PROBER, *(str(i.port) for i in instances[:size])],
                                   dict(os.environ), 60)
            if json.loads(out)["healthy"] != size:
                raise SystemExit("the bare prober did not see every instance healthy")
            runs.setdefault(("prober", size), []).append((wall, cpu))
    return {key: (statistics.median(r[0] for r in values), statistics.median(r[1] for r in values))
            for key, values in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of every case; the median counts")
    parser.add_argument("--pairs", type=int, default=7, help="turns of ollamactl and the prober at 200 instances")
    parser.add_argument("--timeout", type=float, default=2.0, help="probe deadline passed to health")
    args = parser.parse_args()
    venv = honest_venv()
    load_before = os.getloadavg()[0]

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="ollamactl-bench-") as tmp:
        workdir = Path(tmp)
        fleet = [sim.add(name=f"sim-{n}", latency=LATENCY) for n in range(1, max(SIZES) + 1)]
        hung = sim.add(name="hung", fault="hang")
        measure(venv, [fleet[:1]], args.timeout, 1, workdir)  # warm the page cache and bytecode

        cases = [fleet[:size] for size in SIZES] + [fleet[:size] + [hung] for size in HUNG_SIZES]
        labels = [(f"{size}", size, False) for size in SIZES] + \
                 [(f"{size} + 1 hung", size + 1, True) for size in HUNG_SIZES]
        results = [(label, total, wall, healthy, with_hung) for (label, total, with_hung), (wall, healthy)
                   in zip(labels, measure(venv, cases, args.timeout, args.repeat, workdir), strict=True)]
        paired = against_prober(venv, fleet, args.timeout, args.pairs, workdir)

    base = results[0][2]
    print(f"ollamactl health --json --timeout {args.timeout:g}; instances answer after {LATENCY:g} s; "
          f"median of {args.repeat} rounds (subprocess wall time, start-up included)")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs shared with the "
          f"simulator; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print(f"{'instances':<14} {'healthy':>9} {'wall s':>8} {'vs 1':>7}  notes")
    for label, total, wall, healthy, with_hung in results:
        ratio = wall / base
        note = ""
        if with_hung:
            over = wall - base - args.timeout + LATENCY  # the hung probe replaces one 0.1 s answer
            note = f"= 1-instance run + timeout {over:+.2f} s"
        elif total == max(SIZES):
            note = "target <= 1.5x: " + ("met" if ratio <= 1.5 else "MISSED")
        print(f"{label:<14} {healthy:>4}/{total:<4} {wall:>8.2f} {ratio:>6.2f}x  {note}")
    most = max(SIZES)
    (ours_wall, ours_cpu), (floor_wall, floor_cpu) = paired["ollamactl", most], paired["prober", most]
    wall_ratio, cpu_ratio = ours_wall / floor_wall, ours_cpu / floor_cpu
    print(f"\nthe floor: a bare asyncio prober process, the same {3 * most} requests to the same {most} instances;"
          f" in turns with ollamactl, median of {args.pairs} each")
    print(f"{'':<14} {'wall s':>8} {'CPU s':>8}")
    print(f"{'bare prober':<14} {floor_wall:>8.2f} {floor_cpu:>8.2f}")
    print(f"{'ollamactl':<14} {ours_wall:>8.2f} {ours_cpu:>8.2f}")
    print(f"{'ratio':<14} {wall_ratio:>7.2f}x {cpu_ratio:>7.2f}x  targets <= 1.5x wall: "
          f"{'met' if wall_ratio <= 1.5 else 'MISSED'}, <= 2x CPU: {'met' if cpu_ratio <= 2 else 'MISSED'}")
    (ours_one, ours_one_cpu), (floor_one, floor_one_cpu) = paired["ollamactl", 1], paired["prober", 1]
    print(f"\nin the same turns, 1 instance: ollamactl {ours_one:.2f} s, bare prober {floor_one:.2f} s; what the other "
          f"{most - 1} add: ollamactl {ours_wall - ours_one:+.2f} s, bare prober {floor_wall - floor_one:+.2f} s")
    print(f"CPU per further instance: ollamactl {(ours_cpu - ours_one_cpu) / (most - 1) * 1000:.1f} ms, "
          f"bare prober {(floor_cpu - floor_one_cpu) / (most - 1) * 1000:.1f} ms")
    return 0  # a missed target is a result, printed above like the other benchmarks'


if __name__ == "__main__":
    sys.exit(main())
