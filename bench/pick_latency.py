"""Benchmark: start-up of `ollamactl pick` (and other quick commands) against the bare interpreter, honestly.

Everything is timed in a throwaway venv holding a normal `pip install .` of this checkout (see
_venv.py; an editable install is refused), against that venv's own `python -c pass`, interleaved
(one run of each command per round), median of RUNS rounds (>= 30). Set-ups:
- 4 instances with a fresh health cache (no network I/O): `pick` target <= 2.5x `python -c pass`
  (stretch 2x);
- the same 4 as simulated servers with a stale cache (older than health_ttl, within stale_ttl):
  `pick` answers from it and starts one background refresh; target <= 1.2x the fresh-cache pick.
  The cache is made stale before each such run and the refresher it started is waited for after
  it, outside the timing. The work of that refresher (a process the bench caused) still slows
  whatever runs next (by ~10-15 ms here, even after a pause), so the rows run in a different
  shuffled order each round (fixed seed): no row always pays for it;
- 1,000 registered instances with a fresh cache: target <= 1.1x the 4-instance pick;
- `--version`, `paths` (both answered without Typer) and `list` (Typer): target `list` <= 5x.

    python bench/pick_latency.py [--runs 40]
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time

from _support import interleaved_medians, print_ratios, refresh_done, simulated, start_up_arguments
from _venv import honest_venv

from ollamactl.core.fleet import Fleet

FRESH = "\n[settings]\nhealth_ttl = 3600\nstale_ttl = 7200\n"  # the bench decides what is stale
MODELS = [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 1}]


def write_fleet(directory: str, urls: list[str]) -> dict[str, str]:
    """A registry of `urls` with a fresh cache entry each; the environment that points at it."""
    config, state_dir = os.path.join(directory, "instances.toml"), os.path.join(directory, "state")
    lines = ["version = 1"]
    for number, url in enumerate(urls, start=1):
        lines += ["", "[[instances]]", f'id = "i{number}"', f'url = "{url}"']
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n" + FRESH)
    set_age(Fleet(config, state_dir), 0.0, urls)
    return dict(os.environ, OLLAMACTL_CONFIG=config, OLLAMACTL_STATE_DIR=state_dir)


def set_age(fleet: Fleet, seconds: float, urls: list[str] | None = None) -> None:
    now = time.time()

    def change(data: dict) -> None:
        if urls is not None:
            for number, url in enumerate(urls, start=1):
                data["health"][f"i{number}"] = {"url": url, "healthy": True, "error": None, "latency_ms": 1.0,
                                                "version": "0.12.6", "models": MODELS, "loaded": [], "checked_at": 0}
        for entry in data["health"].values():
            entry["checked_at"] = now - seconds

    fleet.store.update(change)


def main() -> None:
    args = start_up_arguments(__doc__.splitlines()[0])
    venv = honest_venv()
    tool = [venv.ollamactl]
    with tempfile.TemporaryDirectory() as tmp, simulated(*({} for _ in range(4))) as sims:
        envs = {name: os.path.join(tmp, name) for name in ("four", "sims", "many")}
        for directory in envs.values():
            os.makedirs(directory)
        four = write_fleet(envs["four"], [f"http://gpu{n}:11434" for n in range(1, 5)])
        stale_env = write_fleet(envs["sims"], sims)
        many = write_fleet(envs["many"], [f"http://gpu{n}:11434" for n in range(1, 1001)])
        stale_fleet = Fleet(stale_env["OLLAMACTL_CONFIG"], stale_env["OLLAMACTL_STATE_DIR"])
        rows = {
            "python -c pass": ([venv.python, "-c", "pass"], four),
            "ollamactl pick": (tool + ["pick"], four),
            "ollamactl pick -m llama3.2 -t chat": (tool + ["pick", "-m", "llama3.2", "-t", "chat"], four),
            "ollamactl pick, stale cache": (tool + ["pick"], stale_env),
            "ollamactl pick, 1,000 instances": (tool + ["pick"], many),
            "ollamactl --version": (tool + ["--version"], four),
            "ollamactl paths": (tool + ["paths"], four),
            "ollamactl list": (tool + ["list"], four),
        }

        def aged(label: str) -> None:
            if label.endswith("stale cache"):
                set_age(stale_fleet, 4000)

        def settled(label: str) -> None:
            if label.endswith("stale cache"):
                refresh_done(stale_env["OLLAMACTL_STATE_DIR"])  # outside the timing

        results = interleaved_medians(rows, args.runs, seed=15, before=aged, after=settled)
    base, pick = results["python -c pass"], results["ollamactl pick"]
    print(f"{venv.ollamactl} (pip install ., not editable); {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs; median of {args.runs} interleaved rounds"
          " (each in its own shuffled order)\n")
    print_ratios(results)
    checks = [
        ("pick <= 2.5x python -c pass", pick / base, 2.5),
        ("stale-cache pick <= 1.2x fresh pick", results["ollamactl pick, stale cache"] / pick, 1.2),
        ("1,000-instance pick <= 1.1x pick", results["ollamactl pick, 1,000 instances"] / pick, 1.1),
        ("list <= 5x python -c pass", results["ollamactl list"] / base, 5.0),
    ]
    print()
    for words, ratio, limit in checks:
        print(f"target {words}: {'met' if ratio <= limit else 'MISSED'} ({ratio:.2f}x)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
