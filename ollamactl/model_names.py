"""Ollama model names, as Ollama matches them: the one rule shared by the core and the simulator.

`/api/tags` lists names with a tag (`llama3.2:latest`) while people type `llama3.2`; both sides of
every comparison go through `normalise_model`. A leaf module: it imports nothing of ollamactl.
"""

from __future__ import annotations

_DEFAULT_PREFIXES = ("registry.ollama.ai/", "library/")


def normalise_model(name: str) -> str:
    """`llama3.2` -> `llama3.2:latest`; `registry.ollama.ai/library/x` -> `x:latest`; others keep namespaces."""
    name = name.strip()
    for prefix in _DEFAULT_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name
