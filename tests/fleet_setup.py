"""The one way tests set up a fleet: simulated instances registered and probed, or fake hosts with a
fresh health cache (no network at all)."""

from __future__ import annotations

import time

from ollamactl.core.fleet import Fleet


def register(*instances, **fields) -> list[str]:
    """Register simulated instances in order as sim1, sim2, ... (the first is the first round-robin
    pick) and probe them all, so the health cache is fresh and faults set afterwards are met by the
    command under test, not by routing's probe. Returns their ids."""
    fleet = Fleet()
    ids = [fleet.add(sim_instance.url, name=f"sim{n}", **fields).id for n, sim_instance in enumerate(instances, 1)]
    prime()
    for sim_instance in instances:
        sim_instance.max_in_flight = 0  # forget the probes' concurrency
    return ids


def prime() -> None:
    """Probe every registered instance now and cache the results."""
    fleet = Fleet()
    fleet.probe(fleet.instances(), timeout=5.0)


def fill_cache(entries) -> None:
    """Write fresh health entries {id: (url, healthy, models, loaded)} into the state, and keep them
    fresh for an hour (`[settings]`): fake hosts (gpu1, ...) cannot be probed again."""
    config = Fleet().locations.registry
    if "[settings]" not in config.read_text():
        with config.open("a") as handle:
            handle.write("\n[settings]\nhealth_ttl = 3600\nunhealthy_ttl = 3600\n")

    def change(data):
        for instance_id, (url, ok, models, loaded) in entries.items():
            data["health"][instance_id] = {
                "url": url, "healthy": ok, "error": None if ok else "connection refused", "latency_ms": 5.0,
                "version": "0.12.6", "models": [{"name": m, "digest": "d" * 64, "size": 1} for m in models],
                "loaded": list(loaded), "checked_at": time.time()}
    Fleet().store.update(change)


def fake_fleet(count, models=("llama3.2:latest",), **fields) -> list[str]:
    """Register `count` fake hosts gpu1..gpuN with a fresh healthy cache (no network is touched)."""
    ids = [Fleet().add(f"gpu{n}", **fields).id for n in range(1, count + 1)]
    fill_cache({i: (f"http://{i.rsplit('-', 1)[0]}:11434", True, models, ()) for i in ids})
    return ids
