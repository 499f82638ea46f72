"""Helpers shared by command modules: shell completion of instance and model names."""

from __future__ import annotations


def complete_instance(incomplete: str) -> list[str]:
    """Ids and names from the local registry (never the network), for shell completion."""
    from ollamactl.core import registry

    try:
        reg = registry.load()
    except Exception:  # completion must never fail loudly
        return []
    refs: list[str] = []
    for instance in reg.instances:
        refs.extend(dict.fromkeys((instance.id, instance.name)))
    return [ref for ref in refs if ref.startswith(incomplete)]


def complete_model(incomplete: str) -> list[str]:
    """Model names from the health cache (never the network), for shell completion."""
    from ollamactl.core import state

    try:
        entries = state.read()["health"].values()
    except Exception:
        return []
    names = sorted({m["name"] for entry in entries for m in entry.get("models") or () if m.get("name")})
    return [name for name in names if name.startswith(incomplete)]
