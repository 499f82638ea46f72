"""Shared benchmark helpers: simulated instances in a child process (so the benchmarked client has its
own CPU and GIL), a throw-away registry, and the honest venv's commands (see _venv.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from ollamactl.core.fleet import Fleet

_CHILD = """
import json, sys
from ollamactl.sim import SimConfig, serve_forever
configs = [SimConfig(**fields) for fields in json.loads(sys.argv[1])]
serve_forever(len(configs), configs=configs,
              ready=lambda instances: print(json.dumps([i.url for i in instances]), flush=True))
"""


@contextmanager
def simulated(*configs: dict):
    """Yield the URLs of len(configs) simulated instances (SimConfig fields per instance)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(list(configs))], stdout=subprocess.PIPE,
                             text=True)
    try:
        urls = json.loads(child.stdout.readline())
        yield urls
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


@contextmanager
def private_registry():
    """Point ollamactl (this process and its children) at a throw-away registry and state directory."""
    saved = {key: os.environ.get(key) for key in ("OLLAMACTL_CONFIG", "OLLAMACTL_STATE_DIR")}
    with tempfile.TemporaryDirectory() as directory:
        os.environ["OLLAMACTL_CONFIG"] = os.path.join(directory, "config", "instances.toml")
        os.environ["OLLAMACTL_STATE_DIR"] = os.path.join(directory, "state")
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def register(urls: list[str]) -> None:
    """Register `urls` and fill the health cache (as a fleet in daily use has it)."""
    for url in urls:
        Fleet().add(url)
    fleet = Fleet()
    fleet.probe(fleet.instances(), timeout=5.0)


def timed_ms(command: list[str], env: dict[str, str], codes: tuple[int, ...] = (0,)) -> float:
    """The wall time of one run of `command`, in ms; a stop unless it exits with one of `codes`."""
    import time

    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode not in codes:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}")
    return elapsed


def wall_s(job: Callable[[Any], object], items: list, parallel: int) -> float:
    """Seconds it takes to run `job(item)` for every item of `items`, `parallel` at a time."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(job, items))
    return time.perf_counter() - start


def interleaved_medians(rows: dict[str, tuple[list[str], dict[str, str]]], runs: int, seed: int,
                        before: Callable[[str], None] | None = None,
                        after: Callable[[str], None] | None = None) -> dict[str, float]:
    """Each row's (label: command, env) median wall time in ms: every command run once to warm the
    page cache, the .pyc files and the snapshots, then `runs` rounds, each in its own shuffled order
    (`before`/`after` run around each timed call, outside the timing)."""
    import random
    import statistics

    for command, env in rows.values():
        subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
    samples: dict[str, list[float]] = {label: [] for label in rows}
    order = list(rows)
    shuffle = random.Random(seed).shuffle
    for _ in range(runs):
        shuffle(order)
        for label in order:
            if before:
                before(label)
            samples[label].append(timed_ms(*rows[label]))
            if after:
                after(label)
    return {label: statistics.median(values) for label, values in samples.items()}


def print_ratios(results: dict[str, float], base_label: str = "python -c pass") -> None:
    """A table of each label's ms and its ratio to `base_label`'s."""
    width = max(len(label) for label in results)
    base = results[base_label]
    print(f"{'command':<{width}} {'ms':>7} {'x pass':>7}")
    for label, ms in results.items():
        print(f"{label:<{width}} {ms:7.1f} {ms / base:7.2f}")


def refresh_done(state_dir: str, limit_s: float = 10.0) -> None:
    """Wait (at most `limit_s`) for the background health refresh a timed command started in
    `state_dir` to end, so that its CPU is not counted in whatever is timed next."""
    import time

    from ollamactl.core.health import background

    deadline = time.monotonic() + limit_s
    while background.is_running(state_dir) and time.monotonic() < deadline:
        time.sleep(0.01)


def ollamactl_command() -> list[str]:
    """The console script of the honest venv (a normal `pip install .`; see _venv.py)."""
    from _venv import honest_venv

    return [honest_venv().ollamactl]


def precompile() -> None:
    """Write ollamactl's .pyc files, as `pip install` does: an editable checkout run with
    PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on every start-up."""
    import compileall

    import ollamactl

    compileall.compile_dir(os.path.dirname(ollamactl.__file__), quiet=1)


@contextmanager
def redis_server():
    """Yield the URL of a throw-away redis-server on a free loopback port (Debian's redis-server)."""
    import shutil
    import socket
    import time

    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed: run scripts/install_test_deps.sh")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen([executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                        sock.sendall(b"PING\r\n")
                        if sock.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()


def start_up_arguments(description: str):  # type: ignore[no-untyped-def]
    """The options every start-up benchmark takes: --runs (at least 30) and --json."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON too")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be at least 30: a median of fewer start-ups says little")
    return args
