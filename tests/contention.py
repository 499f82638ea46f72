"""Registry edits under contention: many `add`/`update`/`remove` processes at once while `pick`
loops run, as a team's scripts would. Used by the tests (small and slow versions) and by
bench/registry_contention.py (which prints the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_PICK_LOOP = """
import os, subprocess, sys
stop = sys.argv[1]
count = 0
while not os.path.exists(stop):
    subprocess.run([sys.executable, "-m", "ollamactl", "pick"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    count += 1
print(count)
"""


@dataclass
class Outcome:
    edits: int
    failed: list[str] = field(default_factory=list)  # stderr of each failed edit
    seconds: float = 0.0
    picks: int = 0
    registry_exact: bool = False


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def seed(config: Path, state_dir: Path, instances: int) -> None:
    """A registry of `instances` instances on loopback ports 20000+, and a fresh healthy cache for them
    (picks do no network I/O)."""
    lines = ["version = 1", "", "[settings]", "health_ttl = 3600", ""]
    health = {}
    for index in range(instances):
        port = 20000 + index
        instance_id = f"127-0-0-1-{port}"
        lines += ["[[instances]]", f'id = "{instance_id}"', f'name = "{instance_id}"', f'url = "{_url(port)}"',
                  'type = "both"', "enabled = true", "weight = 1", ""]
        health[instance_id] = {"url": _url(port), "healthy": True, "error": None, "latency_ms": 1.0,
                               "version": "0.5.0", "models": [{"name": "llama3.2:latest", "digest": "d", "size": 1}],
                               "loaded": [], "checked_at": time.time() + 30}
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("\n".join(lines))
    state_dir.mkdir(parents=True, exist_ok=True)
    state = {"version": 1, "health": health, "cursors": {}, "weights": {}, "breaker": {}, "latency": {}}
    (state_dir / "state.json").write_text(json.dumps(state))


def contend(config: Path, state_dir: Path, instances: int = 45, edits: int = 60, pick_loops: int = 8) -> Outcome:
    """Run `edits` edit processes at once (a third each add, update, remove) beside `pick_loops` loops of
    `pick`, then check that the registry holds exactly what the edits asked for."""
    seed(config, state_dir, instances)
    env = {**os.environ, "OLLAMACTL_CONFIG": str(config), "OLLAMACTL_STATE_DIR": str(state_dir)}
    stop = state_dir / "stop"
    loops = [subprocess.Popen([sys.executable, "-c", _PICK_LOOP, str(stop)], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(pick_loops)]
    third = edits // 3
    assert third <= instances // 2, "not enough instances to update and remove distinct ones"
    commands = []
    for n in range(third):
        commands.append(["add", _url(30000 + n), "--no-check"])  # registry edits, not probes, contend here
        commands.append(["update", f"127-0-0-1-{20000 + n}", "--weight", str(n + 2)])
        commands.append(["remove", "--yes", f"127-0-0-1-{20000 + instances - 1 - n}"])
    outcome = Outcome(edits=len(commands))
    started = time.monotonic()
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "ollamactl", *command], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env) for command in commands]
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                outcome.failed.append(err.strip())
        outcome.seconds = time.monotonic() - started
    finally:
        stop.touch()
        for loop in loops:
            out, _ = loop.communicate(timeout=120)
            outcome.picks += int(out.strip() or 0)
    outcome.registry_exact = _exact(config, instances, third)
    return outcome


def _exact(config: Path, instances: int, third: int) -> bool:
    import tomllib

    data = tomllib.loads(config.read_text())
    got = {entry["id"]: entry.get("weight", 1) for entry in data["instances"]}
    want = {f"127-0-0-1-{20000 + i}": 1 for i in range(instances - third)}
    want.update({f"127-0-0-1-{20000 + n}": n + 2 for n in range(third)})
    want.update({f"127-0-0-1-{30000 + n}": 1 for n in range(third)})
    return got == want
