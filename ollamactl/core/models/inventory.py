"""Which model is on which instance: the fleet's model map, with loaded state and digest mismatches,
and the build (digest) the fleet agrees on."""

from __future__ import annotations

from collections import Counter

from ollamactl.model_names import normalise_model

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence
    from typing import Any

    from ollamactl.core.health.probe import HealthResult
    from ollamactl.core.registry.instances import Instance


def model_map(instances: Sequence[Instance], results: dict[str, HealthResult]) -> list[dict[str, Any]]:
    """Per model tag: the instances holding it, whether loaded there, and digest mismatches.

    An instance's digest "differs" when the tag has more than one digest across instances and
    that instance's digest is not the majority one (with no clear majority, every one differs).
    """
    holders: dict[str, list[dict[str, Any]]] = {}
    for instance in instances:
        result = results.get(instance.id)
        if result is None or not result.healthy:
            continue
        loaded = None if result.loaded is None else {normalise_model(n) for n in result.loaded}
        for model in result.models:
            name = normalise_model(model["name"])
            holders.setdefault(name, []).append({
                "id": instance.id,
                "loaded": None if loaded is None else name in loaded,
                "digest": model.get("digest"),
            })
    out = []
    for name in sorted(holders):
        entries = holders[name]
        split = len({e["digest"] for e in entries if e["digest"]}) > 1
        majority = reference_digest(e["digest"] for e in entries)
        for entry in entries:
            entry["digest_differs"] = split and bool(entry["digest"]) and entry["digest"] != majority
        out.append({"model": name, "instances": entries})
    return out


def held_models(results: Iterable[HealthResult]) -> dict[str, dict[str, str | None]]:
    """Instance id -> {normalised model name: digest} for every healthy result."""
    return {r.id: {normalise_model(m["name"]): m.get("digest") for m in r.models} for r in results if r.healthy}


def reference_digest(digests: Iterable[str | None]) -> str | None:
    """The build the fleet agrees on: the only digest, else the strict majority, else None (a tie)."""
    counts = Counter(d for d in digests if d)
    if not counts:
        return None
    ranked = counts.most_common(2)
    if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
        return ranked[0][0]
    return None
