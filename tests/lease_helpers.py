"""Helpers for the lease, tier and shared-store tests: cached fleets, `exec` processes, polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from fleet_setup import fill_cache

from ollamactl.core.fleet import Fleet


def cached_fleet(*specs: dict, models=("llama3.2:latest",), host: str = "box{}") -> list[str]:
    """Register one instance per spec (fields for Fleet.add, `healthy` popped) at `host` (numbered
    from 1; fake names by default), with a health cache kept fresh for an hour (`[settings]`) so
    that no probe is needed (no network is touched), however long a loaded machine takes."""
    current = Fleet()
    ids, entries = [], {}
    for number, spec in enumerate(specs, 1):
        fields = dict(spec)
        healthy = fields.pop("healthy", True)
        instance = current.add(host.format(number), **fields)
        ids.append(instance.id)
        entries[instance.id] = (instance.url, healthy, models, ())
    fill_cache(entries)
    return ids


def set_health(instance_ids, healthy: bool) -> None:
    """Mark cached instances healthy or not (what a failed probe would have written), fresh now."""
    def change(data):
        for instance_id in instance_ids:
            data["health"][instance_id].update(healthy=healthy, checked_at=time.time(),
                                               error=None if healthy else "connection refused")
    Fleet().store.update(change)


def ollamactl(*args: str, **options) -> subprocess.Popen:
    """`ollamactl ARGS` as a child process (the test's environment: its registry, state and store)."""
    options.setdefault("stdout", subprocess.PIPE)
    options.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "ollamactl", *args], text=True, env=os.environ.copy(), **options)


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> float:
    """Poll `condition` until it holds; returns when (time.monotonic), fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def inflight(*instance_ids: str) -> dict[str, int]:
    return Fleet().store.inflight(list(instance_ids))


def process_state(pid: int) -> str:
    """A process's state letter from /proc ('T' stopped, 'Z' zombie), '' once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def lease_expiries(instance_id: str) -> list[float]:
    """When each live lease on `instance_id` expires (epoch seconds), as the store in use keeps it."""
    store = os.environ.get("OLLAMACTL_STORE")
    if store:
        import redis

        with redis.Redis.from_url(store) as client:
            return [score / 1000 for _, score in client.zrange(f"ollamactl:leases:{instance_id}", 0, -1,
                                                               withscores=True)]
    return list(Fleet().store.read()["leases"].get(instance_id, {}).values())
