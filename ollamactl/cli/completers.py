"""Shell completion of fixed choices, instance ids/names and model names: local files only, never
the network, and never an error (a broken registry completes nothing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def choices(values: Sequence[str]) -> Callable[[str], list[str]]:
    """A completer for an option that takes one of a few words (formats, strategies, types)."""

    def complete(incomplete: str) -> list[str]:
        return [value for value in values if value.startswith(incomplete)]

    return complete


def complete_instance(incomplete: str) -> list[str]:
    """Ids and names from the local registry, for shell completion."""
    from ollamactl import Fleet

    try:
        instances = Fleet().instances()
    except Exception:  # completion must never fail loudly
        return []
    refs: list[str] = []
    for instance in instances:
        refs.extend(dict.fromkeys((instance.id, instance.name)))
    return [ref for ref in refs if ref.startswith(incomplete)]


def complete_priority(incomplete: str) -> list[str]:
    """The tiers the local registry uses, the default 0 and `backup`, for shell completion."""
    from ollamactl import BACKUP, Fleet

    try:
        used = {instance.priority for instance in Fleet().instances() if instance.tier_name != BACKUP}
    except Exception:  # completion must never fail loudly
        used = set()
    tiers = [*map(str, sorted(used | {0})), BACKUP]
    return [tier for tier in tiers if tier.startswith(incomplete)]


def complete_model(incomplete: str) -> list[str]:
    """Model names from the health cache, for shell completion (none that holds a configured key)."""
    from ollamactl import Fleet

    try:
        names = Fleet().cached_models()
    except Exception:  # completion must never fail loudly
        return []
    return [name for name in names if name.isprintable() and name.startswith(incomplete)]  # no escapes into a shell
