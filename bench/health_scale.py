"""How `ollamactl health` scales with the fleet: wall time of 1 ... 200 simulated instances.

Every simulated instance answers after 0.1 s (SimConfig.latency); the bigger runs also include one
hung instance, which must cost the probe timeout and not more. Each case runs
`ollamactl health --json --timeout 2` as a subprocess of the honest venv (a normal `pip install .`,
see _venv.py; interpreter start-up is included, as a user sees it) against a throwaway registry
and state directory, a few times; the median counts.

Then the floor: a bare asyncio prober written here (no httpx, no Typer; the same three requests
per instance, parsed as JSON) runs as its own process against the same 200 instances, and the
wall and CPU time of `ollamactl health --json` are compared with it.

Targets: 200 instances within 1.5x of one instance; with a hung instance, about the timeout;
ollamactl within 1.5x of the prober's wall time and 2x its CPU time.

    python bench/health_scale.py [--repeat 3] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def measure(venv: Venv, instances: list[SimInstance], timeout: float, repeat: int,
            workdir: Path) -> tuple[float, float, list]:
    walls, cpus = [], []
    rows: list[dict] = []
    for _ in range(repeat):
        wall, cpu, rows = run_health(venv, instances, timeout, workdir)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus), rows


# -- the bare prober: `python health_scale.py --prober PORT...` -------------------------------------


async def _bare_get(port: int, path: str) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return json.loads(body) if b" 200 " in head.split(b"\r\n", 1)[0] else None


async def _bare_probe_all(ports: list[int]) -> int:
    async def one(port: int) -> bool:
        answers = await asyncio.gather(*(_bare_get(port, path) for path in ("/api/version", "/api/tags", "/api/ps")))
        return all(answer is not None for answer in answers)

    return sum(await asyncio.gather(*(one(port) for port in ports)))


def prober(ports: list[int]) -> None:
    healthy = asyncio.run(_bare_probe_all(ports))
    print(json.dumps({"healthy": healthy}))


def measure_prober(venv: Venv, instances: list[SimInstance], repeat: int) -> tuple[float, float]:
    command = [venv.python, __file__, "--prober", *(str(i.port) for i in instances)]
    runs = [timed(command, dict(os.environ), 60) for _ in range(repeat)]
    if json.loads(runs[-1][2])["healthy"] != len(instances):
        raise SystemExit("the bare prober did not see every instance healthy")
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> int:
    if sys.argv[1:2] == ["--prober"]:
        prober([int(port) for port in sys.argv[2:]])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--timeout", type=float, default=2.0, help="probe deadline passed to health")
    args = parser.parse_args()
    venv = honest_venv()

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="ollamactl-bench-") as tmp:
        workdir = Path(tmp)
        fleet = [sim.add(name=f"sim-{n}", latency=LATENCY) for n in range(1, max(SIZES) + 1)]
        hung = sim.add(name="hung", fault="hang")
        measure(venv, fleet[:1], args.timeout, 1, workdir)  # warm the page cache and bytecode

        results = []
        cpu_at = {}
        for size in SIZES:
            wall, cpu, rows = measure(venv, fleet[:size], args.timeout, args.repeat, workdir)
            cpu_at[size] = cpu
            healthy = sum(r["healthy"] for r in rows)
            results.append((f"{size}", size, wall, healthy, False))
        floor_wall, floor_cpu = measure_prober(venv, fleet, args.repeat)
        for size in HUNG_SIZES:
            wall, _, rows = measure(venv, fleet[:size] + [hung], args.timeout, args.repeat, workdir)
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
    most = max(SIZES)
    ours_wall = next(wall for label, _, wall, _, _ in results if label == str(most))
    wall_ratio, cpu_ratio = ours_wall / floor_wall, cpu_at[most] / floor_cpu
    print(f"\nthe floor: a bare asyncio prober process, the same {3 * most} requests to the same {most} instances")
    print(f"{'':<14} {'wall s':>8} {'CPU s':>8}")
    print(f"{'bare prober':<14} {floor_wall:>8.2f} {floor_cpu:>8.2f}")
    print(f"{'ollamactl':<14} {ours_wall:>8.2f} {cpu_at[most]:>8.2f}")
    print(f"{'ratio':<14} {wall_ratio:>7.2f}x {cpu_ratio:>7.2f}x  targets <= 1.5x wall: "
          f"{'met' if wall_ratio <= 1.5 else 'MISSED'}, <= 2x CPU: {'met' if cpu_ratio <= 2 else 'MISSED'}")
    ok &= wall_ratio <= 1.5 and cpu_ratio <= 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
